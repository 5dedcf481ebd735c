#!/usr/bin/env python3
"""Where a callgrind profile's instructions go, by origin: the self cost of
every function (callgrind_annotate's listing, inlined code counted to the
header it came from) summed into Asio, Beast, Boost.JSON, the C++ library,
libc, the allocator and our own code (src/).

Usage: KEEP_PROFILE=/tmp/p.cg bench/instructions_per_request.sh --thinking off
       bench/callgrind_by_origin.py /tmp/p.cg
"""
import re
import subprocess
import sys

ORIGINS = [  # the first that matches a function's file (or its library) wins
    ("Asio (scheduler, reactor, awaitables, their mutexes)", r"boost/asio|pthread_mutex|boost/system"),
    ("Beast (parsers, field sets)", r"boost/beast|boost/intrusive"),
    ("Boost.JSON", r"boost_json|boost/json"),
    ("the allocator (mimalloc)", r"mimalloc"),
    ("ours (src/)", r"^(/[^ ]*/)?src/"),
    ("the C++ library (strings, containers)", r"c\+\+/\d+|libstdc\+\+"),
    ("libc (memcpy, memchr, ...)", r"libc\.so"),
]


def main(path):
    listing = subprocess.run(["callgrind_annotate", "--threshold=100", "--auto=no", path],
                             check=True, capture_output=True, text=True).stdout
    sums, total, program = {}, 0, 0
    for line in listing.splitlines():
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)", line)
        if not m:
            continue
        n, where = int(m.group(1).replace(",", "")), m.group(2)
        if "PROGRAM TOTALS" in where:
            program = n
            continue
        # The threads' entry points are listed with everything under them:
        # nearly the whole program, none of it their own.
        if n > 0.9 * program:
            continue
        origin = next((name for name, pattern in ORIGINS if re.search(pattern, where.split(":")[0])
                       or re.search(pattern, where[where.rfind("["):] if "[" in where else "")), "other")
        sums[origin] = sums.get(origin, 0) + n
        total += n
    for origin, n in sorted(sums.items(), key=lambda kv: -kv[1]):
        print(f"{100 * n / total:5.1f}%  {origin}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
