/* fg_time.c - monotonic and wall clocks, RFC 3339 timestamps (see fg_time.h). */
#include "fg_time.h"

#include <string.h>
#include <time.h>

uint64_t fg_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t fg_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void put_digits(char *p, unsigned v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

void fg_rfc3339(uint64_t epoch_ms, char out[FG_RFC3339_LEN + 1])
{
    time_t secs = (time_t)(epoch_ms / 1000u);
    struct tm tm;

    /* Years past 9999 do not fit the fixed width; clamp rather than overflow `out`. */
    if (!gmtime_r(&secs, &tm) || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0) {
        memcpy(out, "9999-12-31T23:59:59.999Z", FG_RFC3339_LEN + 1);
        return;
    }
    /* Fixed-width fields written directly: snprintf would need a range proof per field. */
    memcpy(out, "0000-00-00T00:00:00.000Z", FG_RFC3339_LEN + 1);
    put_digits(out, (unsigned)(tm.tm_year + 1900), 4);
    put_digits(out + 5, (unsigned)(tm.tm_mon + 1), 2);
    put_digits(out + 8, (unsigned)tm.tm_mday, 2);
    put_digits(out + 11, (unsigned)tm.tm_hour, 2);
    put_digits(out + 14, (unsigned)tm.tm_min, 2);
    put_digits(out + 17, (unsigned)tm.tm_sec, 2);
    put_digits(out + 20, (unsigned)(epoch_ms % 1000u), 3);
}
