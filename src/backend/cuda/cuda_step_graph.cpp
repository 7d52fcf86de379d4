// Recording, capturing and replaying decoding steps (see cuda_step_graph.h).
#include "backend/cuda/cuda_step_graph.h"

#include <algorithm>

#include "backend/cuda/cuda_context.h"
#include "flow2/error.h"

namespace flow2::cuda {

StepGraphs::~StepGraphs() {
  clear();
}

void StepGraphs::begin() {
  check(!recording_, "a CUDA step began inside another");
  recording_ = true;
  signature_.clear();
  launches_.clear();
}

void StepGraphs::discard() {
  recording_ = false;
  signature_.clear();
  launches_.clear();
}

void StepGraphs::clear() {
  for (Entry& entry : entries_) {
    if (entry.exec) cudaGraphExecDestroy(entry.exec);
  }
  entries_.clear();
}

namespace {

// Edges of `graph` of type programmatic (a launch with programmatic stream serialization after a
// kernel, as stream capture records it); 0 where the runtime cannot say.
int64_t count_programmatic_edges(cudaGraph_t graph) {
#if CUDART_VERSION >= 12030
  size_t count = 0;
  if (cudaGraphGetEdges(graph, nullptr, nullptr, nullptr, &count) == cudaSuccess) {
    std::vector<cudaGraphNode_t> from(count), to(count);
    std::vector<cudaGraphEdgeData> data(count);
#if CUDART_VERSION >= 13000
    const cudaError_t status =
        cudaGraphGetEdges(graph, from.data(), to.data(), data.data(), &count);
#else
    const cudaError_t status =
        cudaGraphGetEdges_v2(graph, from.data(), to.data(), data.data(), &count);
#endif
    if (status == cudaSuccess) {
      return std::count_if(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(count),
                           [](const cudaGraphEdgeData& edge) {
                             return edge.type == cudaGraphDependencyTypeProgrammatic;
                           });
    }
  }
  cudaGetLastError();  // not an error of the next launch
#endif
  (void)graph;
  return 0;
}

}  // namespace

StepGraphs::Entry* StepGraphs::find() {
  for (Entry& entry : entries_) {
    if (entry.signature == signature_) return &entry;
  }
  return nullptr;
}

void StepGraphs::run_eagerly(cudaStream_t stream) {
  for (Launch& launch : launches_) launch(stream);
}

StepGraphs::Entry& StepGraphs::capture(cudaStream_t stream) {
  if (entries_.size() == kMaxGraphs) {  // the least recently used graph makes room
    auto oldest =
        std::min_element(entries_.begin(), entries_.end(),
                         [](const auto& a, const auto& b) { return a.last_used < b.last_used; });
    if (oldest->exec) cudaGraphExecDestroy(oldest->exec);
    entries_.erase(oldest);
  }
  Entry entry;
  entry.signature = signature_;
  cudaGraph_t graph = nullptr;
  check_cuda(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal),
             "cudaStreamBeginCapture");
  bool captured = true;
  try {
    run_eagerly(stream);  // queued into the graph, not run
  } catch (const Error&) {
    captured = false;
  }
  const cudaError_t ended = cudaStreamEndCapture(stream, &graph);
  if (captured && ended == cudaSuccess && graph) {
    programmatic_edges_ = count_programmatic_edges(graph);
    captured = cudaGraphInstantiate(&entry.exec, graph, 0) == cudaSuccess;
  }
  if (graph) cudaGraphDestroy(graph);
  if (!captured) {
    cudaGetLastError();  // a step that cannot be captured runs op by op from now on
    entry.exec = nullptr;
  }
  ++captures_;
  entries_.push_back(std::move(entry));
  return entries_.back();
}

void StepGraphs::run(cudaStream_t stream, bool capturable) {
  check(recording_, "a CUDA step ended that never began");
  recording_ = false;
  if (launches_.empty()) return;
  Entry* entry = find();
  if (!entry && !capturable) {
    run_eagerly(stream);
    launches_.clear();
    return;
  }
  if (!entry) entry = &capture(stream);
  entry->last_used = ++clock_;
  if (entry->exec) {
    check_cuda(cudaGraphLaunch(entry->exec, stream), "cudaGraphLaunch");
    ++replays_;
  } else {
    run_eagerly(stream);
  }
  launches_.clear();
}

}  // namespace flow2::cuda
