// Backend's defaults for tokens chosen on a device (backend.h): a backend that keeps nothing on
// a device makes no token-id tensors (make_token_ids), so these are never reached through it.
#include "flow2/backend.h"
#include "flow2/error.h"

namespace flow2 {

int64_t Backend::choose_into(Tensor& ids, const Tensor& logits, const SamplingOptions& options,
                             std::span<const double> uniforms) {
  (void)ids, (void)logits, (void)options, (void)uniforms;
  fail("choose_into: the {} backend keeps no token ids on a device", name());
}

std::vector<int32_t> Backend::chosen_ids(int64_t ticket) {
  (void)ticket;
  fail("chosen_ids: the {} backend keeps no token ids on a device", name());
}

void Backend::embedding_of_ids(Tensor& out, const Tensor& table, const Tensor& ids) {
  (void)out, (void)table, (void)ids;
  fail("embedding_of_ids: the {} backend keeps no token ids on a device", name());
}

}  // namespace flow2
