// The Lua scripts of a Redis queue: what each one does is said above its
// text in redis_scripts.cpp. Loaded by redis_source::prepare().
#pragma once

namespace spoold {

extern const char* const k_take;
extern const char* const k_ok;
extern const char* const k_retry;
extern const char* const k_fail;
extern const char* const k_release;
extern const char* const k_offer_ignored;
extern const char* const k_take_over;

}  // namespace spoold
