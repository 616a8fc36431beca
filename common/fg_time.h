/* fg_time.h - clocks and timestamps.
 *
 * Durations and deadlines use the monotonic clock; wall-clock time appears only in
 * timestamps meant for people (logs, snapshot created_at). */
#ifndef FG_TIME_H
#define FG_TIME_H

#include <stddef.h>
#include <stdint.h>

#define FG_RFC3339_LEN 24 /* "2026-11-25T19:43:28.123Z" */

/** Monotonic milliseconds since an arbitrary start (CLOCK_MONOTONIC). */
uint64_t fg_now_ms(void);

/** Wall-clock milliseconds since the Unix epoch. */
uint64_t fg_wall_ms(void);

/** Format `epoch_ms` as RFC 3339 UTC with milliseconds into `out` (FG_RFC3339_LEN + 1). */
void fg_rfc3339(uint64_t epoch_ms, char out[FG_RFC3339_LEN + 1]);

#endif
