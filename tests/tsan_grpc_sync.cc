// ThreadSanitizer annotations for gRPC's completion queues. tests/CMakeLists.txt links this file
// into the test executables of a -fsanitize=thread build only (scripts/test.sh's third stage,
// build-tsan), beside tsan_absl_sync.cc.
//
// gRPC guarantees that everything a thread did before it started a batch of operations
// (grpc_call_start_batch) happens before the batch's completion is delivered with its tag. The
// C++ API builds on that: a reactor's StartWrite or Finish fills a CallOpSet and a
// CallbackWithSuccessTag (header code, compiled into the tests with -fsanitize=thread) and starts
// the batch; a gRPC thread takes the completion from grpc_completion_queue_next and runs the tag,
// which reads the same objects. Between the two, gRPC core (not instrumented) passes the batch
// along with atomics TSan does not see, so every such read would be reported as a race. The
// definitions below sit in front of gRPC's own (found with dlsym(RTLD_NEXT)) and state the
// guarantee: a release on the tag when a batch starts, an acquire on the tag when its completion
// is taken from a completion queue.

#include <dlfcn.h>
#include <grpc/grpc.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>

#ifndef __SANITIZE_THREAD__
#error "tests/tsan_grpc_sync.cc belongs to -fsanitize=thread builds only"
#endif

namespace {

template <typename Fn>
Fn Real(const char* name) {
  void* fn = dlsym(RTLD_NEXT, name);
  if (fn == nullptr) {
    std::fprintf(stderr, "tsan_grpc_sync: %s not found in the gRPC libraries\n", name);
    std::abort();
  }
  return reinterpret_cast<Fn>(fn);
}

grpc_event Completed(grpc_event event) {
  if (event.type == GRPC_OP_COMPLETE && event.tag != nullptr) __tsan_acquire(event.tag);
  return event;
}

}  // namespace

extern "C" {

grpc_call_error grpc_call_start_batch(grpc_call* call, const grpc_op* ops, size_t nops, void* tag,
                                      void* reserved) {
  static const auto real =
      Real<grpc_call_error (*)(grpc_call*, const grpc_op*, size_t, void*, void*)>(
          "grpc_call_start_batch");
  if (tag != nullptr) __tsan_release(tag);
  return real(call, ops, nops, tag, reserved);
}

grpc_event grpc_completion_queue_next(grpc_completion_queue* cq, gpr_timespec deadline,
                                      void* reserved) {
  static const auto real = Real<grpc_event (*)(grpc_completion_queue*, gpr_timespec, void*)>(
      "grpc_completion_queue_next");
  return Completed(real(cq, deadline, reserved));
}

grpc_event grpc_completion_queue_pluck(grpc_completion_queue* cq, void* tag, gpr_timespec deadline,
                                       void* reserved) {
  static const auto real = Real<grpc_event (*)(grpc_completion_queue*, void*, gpr_timespec, void*)>(
      "grpc_completion_queue_pluck");
  return Completed(real(cq, tag, deadline, reserved));
}

}  // extern "C"
