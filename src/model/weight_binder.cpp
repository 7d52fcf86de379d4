#include "model/weight_binder.h"

#include "flow2/error.h"

namespace flow2 {

const HostTensor& WeightBinder::host(const std::string& name, const Shape& expected) const {
  const HostTensor& tensor = store_.get(name);
  check(tensor.shape == expected, "{}: tensor '{}' has shape {} but config.json implies {}",
        store_.source(), name, shape_string(tensor.shape), shape_string(expected));
  check(is_floating(tensor.dtype), "{}: tensor '{}' is {}, expected a floating-point weight",
        store_.source(), name, dtype_name(tensor.dtype));
  return tensor;
}

Tensor WeightBinder::bind(const std::string& name, const Shape& expected) const {
  return backend_.upload_weight(host(name, expected));
}

Tensor WeightBinder::bind_if(bool present, const std::string& name, const Shape& expected) const {
  return present ? bind(name, expected) : Tensor();
}

}  // namespace flow2
