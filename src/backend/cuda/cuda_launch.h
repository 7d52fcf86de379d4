// Whether flow2's kernels launch with programmatic dependent launch (PDL): the host-side
// decision, usable from plain C++ (tests, benchmarks). The launcher and the device side are in
// cuda_launch.cuh, which also says what PDL changes and what still holds.
#pragma once

#include <optional>

namespace flow2::cuda {

// The rule, without a device: PDL needs compute capability 9.0 or later, kernels compiled for
// 9.0 or later (their PTX version: kernels JIT-compiled from older PTX have no grid dependency
// wait, so launching them early would race) and FLOW2_CUDA_PDL unset or not "0" (`setting`,
// null when unset).
bool programmatic_launch_allowed(int compute_major, int kernel_ptx_version, const char* setting);

// The decision for the current device: FLOW2_CUDA_PDL is read once per process, the device and
// the kernels' PTX version once per device. An override, when set, replaces the environment.
bool programmatic_launch_enabled();

// Turns PDL on (where the device and kernels allow it) or off for launches from now on, or back
// to FLOW2_CUDA_PDL with nullopt: for tests and benchmarks that compare both in one process.
// Graphs keep what they were captured with, so compare on fresh backends.
void override_programmatic_launch(std::optional<bool> enabled);

}  // namespace flow2::cuda
