#!/usr/bin/env python3
"""Coroutine frame sizes, from the `.Frame` types g++ writes into the debug
information: what every suspended coroutine costs. A held stream keeps the
frames of run_session, handle, proxy, forward, exchange and
relay_stream. With --members NAME: the members of the first frame whose
mangled name contains NAME, with offsets and sizes (temporaries show as D.nnn).

Usage: bench/frame_sizes.py [--members NAME] [OBJECT...]
Default objects: build/'s gateway_server.cpp.o and http_session.cpp.o
(make build; RelWithDebInfo carries the debug information). Needs readelf.
"""
import os
import re
import subprocess
import sys

os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
args = sys.argv[1:]
want = ""
if args[:1] == ["--members"]:
    if len(args) < 2:
        sys.exit(__doc__)
    want, args = args[1], args[2:]
if args[:1] in (["-h"], ["--help"]):
    print(__doc__)
    sys.exit(0)
objects = args or [
    "build/CMakeFiles/llmgate_net.dir/src/server/gateway_server.cpp.o",
    "build/CMakeFiles/llmgate_net.dir/src/server/http_session.cpp.o",
]
for o in objects:
    if not os.path.isfile(o):
        sys.exit(f"no {o} (make build)")

die = re.compile(r"\s*<(\d+)><[0-9a-f]+>: Abbrev Number: \d+(?: \((DW_TAG_\w+)\))?")
frame_name = re.compile(r"DW_AT_name\s*:.*?(\S+\.Frame)\s*$")
sizes, members = {}, []
for o in objects:
    dump = subprocess.run(["readelf", "--debug-dump=info", o], capture_output=True, text=True).stdout
    tag, depth, name, inside = None, 0, None, None  # inside: the wanted frame's depth
    for line in dump.splitlines():
        m = die.match(line)
        if m:
            depth, tag, name = int(m.group(1)), m.group(2), None
            if inside is not None and depth <= inside:
                break
            if inside is not None and tag == "DW_TAG_member" and depth == inside + 1:
                members.append(["?", None])
            continue
        if tag == "DW_TAG_structure_type" and inside is None:
            n = frame_name.search(line)
            if n:
                name = n.group(1)
                if want and want in name:
                    inside = depth
                    print(name)
                continue
            s = re.search(r"DW_AT_byte_size\s*:\s*(\S+)", line)
            if s and name:
                sizes[name] = int(s.group(1), 0)
        elif inside is not None and tag == "DW_TAG_member" and members:
            n = re.search(r"DW_AT_name\s*:\s*(?:\(.*?\):\s*)?(\S+)", line)
            if n:
                members[-1][0] = n.group(1)
            off = re.search(r"DW_AT_data_member_location\s*:\s*(\S+)", line)
            if off:
                members[-1][1] = int(off.group(1), 0)
    if want and members:
        break

if want:
    placed = [m for m in members if m[1] is not None]
    if not placed:
        sys.exit(f"no frame matching {want}")
    for i, (n, off) in enumerate(placed):
        size = placed[i + 1][1] - off if i + 1 < len(placed) else 0
        print(f"{off:6d} {size:6d}  {n}")
else:
    for n, s in sorted(sizes.items(), key=lambda kv: -kv[1]):
        short = re.sub(r"^_ZN7llmgate6server(7gateway4impl)?", "", n)
        print(f"{s:7d}  {short[:100]}")
