// The delay before a task's next try after a Retry, a crash or a timeout.
#pragma once

#include "duration.hpp"

namespace spoold {

// finished_tries >= 1 is how many tries the task has used. The delay is
// backoff doubled per earlier try, capped at backoff_max, then lengthened
// by up to a quarter (jitter in [0, 1)) so tasks that failed together do
// not all come back in the same instant; never over backoff_max.
duration retry_delay(unsigned finished_tries, duration backoff, duration backoff_max, double jitter);

// A uniformly random jitter in [0, 1) from a per-process generator.
double random_jitter();

}  // namespace spoold
