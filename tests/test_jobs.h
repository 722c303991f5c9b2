#ifndef GAN_TESTS_TEST_JOBS_H_
#define GAN_TESTS_TEST_JOBS_H_

// Job specs the service tests share.

#include <cstdint>

#include "gan/v1/service.pb.h"

namespace gan::testing {

// Adam with beta1 0.5, beta2 0.999, eps 1e-7 (the presets' Keras values).
gan::v1::AdamSpec MakeAdam(float learning_rate);

// An MLP GAN on 28x28x1 synthetic images, fast enough that its steps cost little more than their
// store writes. G: noise(16) -> Dense(64) -> ReLU -> Dense(784) -> Tanh -> Reshape(1, 28, 28);
// D: Flatten -> Dense(32) -> LeakyReLU(0.2) -> Dense(1). Batch 8, seed 3.
gan::v1::JobSpec TinyJob(int64_t steps);

// A job that outlives any test (it is always cancelled): the tiny GAN for a million steps, with
// few metric events and no checkpoint but the one written when it stops.
gan::v1::JobSpec LongJob();

}  // namespace gan::testing

#endif  // GAN_TESTS_TEST_JOBS_H_
