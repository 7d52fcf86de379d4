// Looks up checkpoint tensors by name, checks their shapes against the config, and uploads them.
#pragma once

#include <string>

#include "flow2/backend.h"
#include "flow2/model_config.h"
#include "flow2/weight_store.h"

namespace flow2 {

class WeightBinder {
 public:
  WeightBinder(const WeightStore& store, Backend& backend) : store_(store), backend_(backend) {}

  // The host tensor `name`, which must exist with shape `expected`.
  const HostTensor& host(const std::string& name, const Shape& expected) const;
  // Uploads `name` after checking that it exists with shape `expected`.
  Tensor bind(const std::string& name, const Shape& expected) const;
  // As bind, or an undefined Tensor when `present` is false.
  Tensor bind_if(bool present, const std::string& name, const Shape& expected) const;
  bool has(const std::string& name) const { return store_.find(name) != nullptr; }
  Backend& backend() const { return backend_; }

 private:
  const WeightStore& store_;
  Backend& backend_;
};

}  // namespace flow2
