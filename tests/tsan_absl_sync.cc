// ThreadSanitizer annotations for Abseil's synchronization primitives. tests/CMakeLists.txt links
// this file into the test executables of a -fsanitize=thread build only (scripts/test.sh's third
// stage, build-tsan); no other build compiles it.
//
// Debian's libabsl_synchronization is not built with -fsanitize=thread, so TSan cannot see
// absl::Mutex, absl::CondVar or absl::Notification synchronize: their fast paths are atomics in an
// uninstrumented library and their slow paths raw futex system calls. Without this file every
// access the project makes under an absl::Mutex is reported as a data race. An Abseil built with
// -fsanitize=thread tells TSan about each lock and unlock itself (the ABSL_TSAN_MUTEX_*
// annotations of its mutex.cc, compiled in only under TSan); this file makes the same calls around
// Debian's library. It defines the public entry points in the executable, where they take
// precedence over the shared library's, both for the project's calls and for those of gRPC and
// Abseil itself, which bind through the dynamic linker; each definition calls the library's own
// (found with dlsym(RTLD_NEXT)) between the annotations mutex.cc makes at the same places.
//
// TSan also checks the mutex's own memory on every lock and unlock (so that locking a mutex that
// another thread is still constructing or already destroying is reported). That check is only
// meaningful for a mutex the instrumented code owns: a mutex inside a gRPC or Abseil object is
// created, handed between threads and freed by uninstrumented code whose synchronization TSan
// does not see, so for calls from a shared library the annotations establish the happens-before
// edges but skip that check.
//
// An entry point the library calls from inside another (ReleasableMutexLock::Release unlocking,
// Notification::Notify locking its mutex, AwaitWithTimeout calling AwaitWithDeadline) is annotated
// once, by the outermost call. Condition functions that absl::Mutex evaluates while it locks or
// unlocks run inside the annotated window, where TSan ignores memory accesses, as it does with an
// instrumented Abseil.

#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/base/options.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

#ifndef __SANITIZE_THREAD__
#error "tests/tsan_absl_sync.cc belongs to -fsanitize=thread builds only"
#endif

extern "C" {
void __tsan_ignore_thread_begin();
void __tsan_ignore_thread_end();
extern const char __executable_start[];  // the executable's code (GNU ld's default script)
extern const char etext[];
}

namespace {

#define GAN_TSAN_STRINGIFY2(x) #x
#define GAN_TSAN_STRINGIFY(x) GAN_TSAN_STRINGIFY2(x)

// The library's definition of an entry point, by its mangled name: `prefix` is "_ZN" or "_ZNK"
// (const member functions), `rest` the part after absl's namespaces, e.g. "5Mutex4LockEv".
template <typename Fn>
Fn Real(const char* prefix, const char* rest) {
  std::string name = std::string(prefix) + "4absl";
#if ABSL_OPTION_USE_INLINE_NAMESPACE
  const std::string inline_namespace = GAN_TSAN_STRINGIFY(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  name += std::to_string(inline_namespace.size()) + inline_namespace;
#endif
  name += rest;
  void* fn = dlsym(RTLD_NEXT, name.c_str());
  if (fn == nullptr) {
    std::fprintf(stderr, "tsan_absl_sync: %s not found in the Abseil libraries\n", name.c_str());
    std::abort();
  }
  return reinterpret_cast<Fn>(fn);
}

// > 0 while this thread is inside an annotated entry point: entry points the library calls from
// there are not annotated again.
thread_local int depth = 0;

class Inside {
 public:
  Inside() { ++depth; }
  ~Inside() { --depth; }
  Inside(const Inside&) = delete;
  Inside& operator=(const Inside&) = delete;
};

// Whether `caller` (a return address) is in the executable, the code built with -fsanitize=thread;
// anything else is a shared library.
bool Instrumented(const void* caller) {
  const auto pc = reinterpret_cast<uintptr_t>(caller);
  return pc >= reinterpret_cast<uintptr_t>(__executable_start) &&
         pc < reinterpret_cast<uintptr_t>(etext);
}

// For a call from a shared library, TSan skips its checks of memory accesses (the mutex's own
// word) for the scope; synchronization is still recorded.
class MemoryChecks {
 public:
  explicit MemoryChecks(const void* caller) : skip_(!Instrumented(caller)) {
    if (skip_) __tsan_ignore_thread_begin();
  }
  ~MemoryChecks() {
    if (skip_) __tsan_ignore_thread_end();
  }
  MemoryChecks(const MemoryChecks&) = delete;
  MemoryChecks& operator=(const MemoryChecks&) = delete;

 private:
  const bool skip_;
};

// The TSan flags of the lock the calling thread holds on `mu`, read from absl::Mutex's lock word
// (kMuWriter, 0x8, set while a writer holds it; mutex.cc's layout, unchanged since Abseil's first
// release), as mutex.cc's AwaitCommon and CondVar::WaitCommon do.
unsigned HeldFlags(const absl::Mutex* mu) {
  static_assert(sizeof(absl::Mutex) == sizeof(std::atomic<intptr_t>), "absl::Mutex layout");
  const intptr_t word =
      reinterpret_cast<const std::atomic<intptr_t>*>(mu)->load(std::memory_order_relaxed);
  return (word & 0x8) != 0 ? 0 : __tsan_mutex_read_lock;
}

// Acquires `mu` around `call`, which returns with the lock held.
template <typename Call>
auto AnnotatedLock(void* mu, unsigned flags, const void* caller, Call call) {
  MemoryChecks checks(caller);
  __tsan_mutex_pre_lock(mu, flags);
  auto result = [&] {
    Inside inside;
    return call();
  }();
  __tsan_mutex_post_lock(mu, flags, 0);
  return result;
}

bool AnnotatedTryLock(absl::Mutex* mu, unsigned flags, const void* caller,
                      bool (*real)(absl::Mutex*)) {
  MemoryChecks checks(caller);
  __tsan_mutex_pre_lock(mu, flags);
  bool locked;
  {
    Inside inside;
    locked = real(mu);
  }
  __tsan_mutex_post_lock(mu, locked ? flags : flags | __tsan_mutex_try_lock_failed, 0);
  return locked;
}

// Releases `mu` around `call`.
template <typename Call>
void AnnotatedUnlock(void* mu, unsigned flags, const void* caller, Call call) {
  MemoryChecks checks(caller);
  __tsan_mutex_pre_unlock(mu, flags);
  {
    Inside inside;
    call();
  }
  __tsan_mutex_post_unlock(mu, flags);
}

// Releases the held `mu` and acquires it again around `call` (Await, CondVar::Wait).
template <typename Call>
auto AnnotatedWait(absl::Mutex* mu, const void* caller, Call call) {
  MemoryChecks checks(caller);
  const unsigned flags = HeldFlags(mu);
  __tsan_mutex_pre_unlock(mu, flags);
  auto result = [&] {
    Inside inside;
    return call();
  }();
  __tsan_mutex_post_unlock(mu, flags);
  __tsan_mutex_pre_lock(mu, flags);
  __tsan_mutex_post_lock(mu, flags, 0);
  return result;
}

using MutexFn = void (*)(absl::Mutex*);
using TryLockFn = bool (*)(absl::Mutex*);
using WhenFn = void (*)(absl::Mutex*, const absl::Condition&);
using WhenTimeoutFn = bool (*)(absl::Mutex*, const absl::Condition&, absl::Duration);
using WhenDeadlineFn = bool (*)(absl::Mutex*, const absl::Condition&, absl::Time);

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

Mutex::~Mutex() {
  static const auto real = Real<MutexFn>("_ZN", "5MutexD2Ev");
  real(this);
  MemoryChecks checks(__builtin_return_address(0));
  __tsan_mutex_destroy(this, __tsan_mutex_not_static);
}

void Mutex::Lock() {
  static const auto real = Real<MutexFn>("_ZN", "5Mutex4LockEv");
  if (depth > 0) return real(this);
  AnnotatedLock(this, 0, __builtin_return_address(0), [&] { return (real(this), 0); });
}

void Mutex::ReaderLock() {
  static const auto real = Real<MutexFn>("_ZN", "5Mutex10ReaderLockEv");
  if (depth > 0) return real(this);
  AnnotatedLock(this, __tsan_mutex_read_lock, __builtin_return_address(0),
                [&] { return (real(this), 0); });
}

bool Mutex::TryLock() {
  static const auto real = Real<TryLockFn>("_ZN", "5Mutex7TryLockEv");
  if (depth > 0) return real(this);
  return AnnotatedTryLock(this, __tsan_mutex_try_lock, __builtin_return_address(0), real);
}

bool Mutex::ReaderTryLock() {
  static const auto real = Real<TryLockFn>("_ZN", "5Mutex13ReaderTryLockEv");
  if (depth > 0) return real(this);
  return AnnotatedTryLock(this, __tsan_mutex_try_read_lock, __builtin_return_address(0), real);
}

void Mutex::Unlock() {
  static const auto real = Real<MutexFn>("_ZN", "5Mutex6UnlockEv");
  if (depth > 0) return real(this);
  AnnotatedUnlock(this, 0, __builtin_return_address(0), [&] { real(this); });
}

void Mutex::ReaderUnlock() {
  static const auto real = Real<MutexFn>("_ZN", "5Mutex12ReaderUnlockEv");
  if (depth > 0) return real(this);
  AnnotatedUnlock(this, __tsan_mutex_read_lock, __builtin_return_address(0), [&] { real(this); });
}

void Mutex::LockWhen(const Condition& cond) {
  static const auto real = Real<WhenFn>("_ZN", "5Mutex8LockWhenERKNS0_9ConditionE");
  if (depth > 0) return real(this, cond);
  AnnotatedLock(this, 0, __builtin_return_address(0), [&] { return (real(this, cond), 0); });
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, Duration timeout) {
  static const auto real =
      Real<WhenTimeoutFn>("_ZN", "5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  if (depth > 0) return real(this, cond, timeout);
  return AnnotatedLock(this, 0, __builtin_return_address(0),
                       [&] { return real(this, cond, timeout); });
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, Time deadline) {
  static const auto real =
      Real<WhenDeadlineFn>("_ZN", "5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  if (depth > 0) return real(this, cond, deadline);
  return AnnotatedLock(this, 0, __builtin_return_address(0),
                       [&] { return real(this, cond, deadline); });
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  static const auto real = Real<WhenFn>("_ZN", "5Mutex14ReaderLockWhenERKNS0_9ConditionE");
  if (depth > 0) return real(this, cond);
  AnnotatedLock(this, __tsan_mutex_read_lock, __builtin_return_address(0),
                [&] { return (real(this, cond), 0); });
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, Duration timeout) {
  static const auto real = Real<WhenTimeoutFn>(
      "_ZN", "5Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  if (depth > 0) return real(this, cond, timeout);
  return AnnotatedLock(this, __tsan_mutex_read_lock, __builtin_return_address(0),
                       [&] { return real(this, cond, timeout); });
}

bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, Time deadline) {
  static const auto real =
      Real<WhenDeadlineFn>("_ZN", "5Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  if (depth > 0) return real(this, cond, deadline);
  return AnnotatedLock(this, __tsan_mutex_read_lock, __builtin_return_address(0),
                       [&] { return real(this, cond, deadline); });
}

void Mutex::Await(const Condition& cond) {
  static const auto real = Real<WhenFn>("_ZN", "5Mutex5AwaitERKNS0_9ConditionE");
  if (depth > 0) return real(this, cond);
  AnnotatedWait(this, __builtin_return_address(0), [&] { return (real(this, cond), 0); });
}

bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  static const auto real =
      Real<WhenTimeoutFn>("_ZN", "5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  if (depth > 0) return real(this, cond, timeout);
  return AnnotatedWait(this, __builtin_return_address(0),
                       [&] { return real(this, cond, timeout); });
}

bool Mutex::AwaitWithDeadline(const Condition& cond, Time deadline) {
  static const auto real =
      Real<WhenDeadlineFn>("_ZN", "5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  if (depth > 0) return real(this, cond, deadline);
  return AnnotatedWait(this, __builtin_return_address(0),
                       [&] { return real(this, cond, deadline); });
}

void ReleasableMutexLock::Release() {
  static const auto real =
      Real<void (*)(ReleasableMutexLock*)>("_ZN", "19ReleasableMutexLock7ReleaseEv");
  if (depth > 0) return real(this);
  Mutex* mu = mu_;  // Release() clears it
  AnnotatedUnlock(mu, 0, __builtin_return_address(0), [&] { real(this); });
}

void CondVar::Wait(Mutex* mu) {
  static const auto real = Real<void (*)(CondVar*, Mutex*)>("_ZN", "7CondVar4WaitEPNS0_5MutexE");
  if (depth > 0) return real(this, mu);
  AnnotatedWait(mu, __builtin_return_address(0), [&] { return (real(this, mu), 0); });
}

bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  static const auto real = Real<bool (*)(CondVar*, Mutex*, Duration)>(
      "_ZN", "7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  if (depth > 0) return real(this, mu, timeout);
  return AnnotatedWait(mu, __builtin_return_address(0), [&] { return real(this, mu, timeout); });
}

bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  static const auto real = Real<bool (*)(CondVar*, Mutex*, Time)>(
      "_ZN", "7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  if (depth > 0) return real(this, mu, deadline);
  return AnnotatedWait(mu, __builtin_return_address(0), [&] { return real(this, mu, deadline); });
}

// A notification is a release by Notify() and an acquire by the waits that see it (on the
// object's address; its own mutex is locked inside the library and not annotated again).
void Notification::Notify() {
  static const auto real = Real<void (*)(Notification*)>("_ZN", "12Notification6NotifyEv");
  if (depth > 0) return real(this);
  __tsan_release(this);
  Inside inside;
  real(this);
}

void Notification::WaitForNotification() const {
  static const auto real =
      Real<void (*)(const Notification*)>("_ZNK", "12Notification19WaitForNotificationEv");
  if (depth > 0) return real(this);
  {
    Inside inside;
    real(this);
  }
  __tsan_acquire(const_cast<Notification*>(this));
}

bool Notification::WaitForNotificationWithTimeout(Duration timeout) const {
  static const auto real = Real<bool (*)(const Notification*, Duration)>(
      "_ZNK", "12Notification30WaitForNotificationWithTimeoutENS0_8DurationE");
  if (depth > 0) return real(this, timeout);
  bool notified;
  {
    Inside inside;
    notified = real(this, timeout);
  }
  if (notified) __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

bool Notification::WaitForNotificationWithDeadline(Time deadline) const {
  static const auto real = Real<bool (*)(const Notification*, Time)>(
      "_ZNK", "12Notification31WaitForNotificationWithDeadlineENS0_4TimeE");
  if (depth > 0) return real(this, deadline);
  bool notified;
  {
    Inside inside;
    notified = real(this, deadline);
  }
  if (notified) __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

ABSL_NAMESPACE_END
}  // namespace absl
