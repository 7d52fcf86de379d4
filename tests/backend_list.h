// The backends the op tests run on: every backend this build has a device for.
#pragma once

#include <string>
#include <vector>

#include "flow2/build_info.h"

namespace flow2::testing {

inline std::vector<std::string> available_backends() {
  std::vector<std::string> names = {"cpu"};
  return names;
}

}  // namespace flow2::testing
