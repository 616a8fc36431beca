#!/usr/bin/env python3
"""cg_top.py - exclusive and inclusive instruction counts per function from a callgrind dump.

callgrind_annotate 3.19 attributes every self cost of a dump taken with `callgrind_control
-d` to main(); this reads the file format directly (valgrind's docs, "Callgrind Format
Specification"): `fn=` names the current function, a cost line after `calls=` is the
inclusive cost of that call, every other cost line is self cost of the current function.

    cg_top.py callgrind.out.N [--per 20000] [--top 25]

--per divides every figure (e.g. by the number of requests in the dump). Also prints the
self cost per object (our binary, libevent, libc, ...).
"""

import argparse
import collections
import re
import sys

NAME_RE = re.compile(r"^\((\d+)\)(?: (.*))?$")


def parse(path):
    names = {"fn": {}, "ob": {}}
    self_cost = collections.Counter()
    incl_calls = collections.Counter()  # (caller, callee) -> inclusive cost of the calls
    n_calls = collections.Counter()     # callee -> number of calls
    pair_calls = collections.Counter()  # (caller, callee) -> number of calls
    obj_of = {}
    fn = ob = None
    pending_call = None

    def resolve(kind, text):
        m = NAME_RE.match(text)
        if not m:
            return text
        ident, name = m.group(1), m.group(2)
        if name is not None:
            names[kind][ident] = name
        return names[kind].get(ident, "(%s)" % ident)

    total = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            key, eq, val = line.partition("=")
            if eq and key in ("fn", "ob", "cfn", "cob", "calls", "fl", "fi", "fe", "cfi", "cfl"):
                if key == "fn":
                    fn = resolve("fn", val)
                    obj_of.setdefault(fn, ob)
                elif key == "ob":
                    ob = resolve("ob", val)
                elif key == "cob":
                    resolve("ob", val)
                elif key == "cfn":
                    pending_call = resolve("fn", val)
                elif key == "calls" and pending_call is not None:
                    n_calls[pending_call] += int(val.split()[0])
                    pair_calls[(fn, pending_call)] += int(val.split()[0])
                continue
            if line.startswith("summary:") or line.startswith("totals:"):
                total = int(line.split()[1])
                continue
            if not (line[0].isdigit() or line[0] in "+-*"):
                continue
            parts = line.split()
            cost = int(parts[1]) if len(parts) > 1 else 0
            if pending_call is not None:
                incl_calls[(fn, pending_call)] += cost
                pending_call = None
            else:
                self_cost[fn] += cost
    return total, self_cost, incl_calls, obj_of, n_calls, pair_calls


def inclusive(self_cost, incl_calls):
    incl = collections.Counter(self_cost)
    for (caller, callee), cost in incl_calls.items():
        if caller != callee:  # recursion would count twice
            incl[caller] += cost
    return incl


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dump")
    ap.add_argument("--per", type=float, default=1.0, help="divide figures by this")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--callers", action="append", default=[],
                    help="also list who calls this function, how often, at what cost")
    args = ap.parse_args()
    total, self_cost, calls, obj_of, n_calls, pair_calls = parse(args.dump)
    total = total or sum(self_cost.values())
    per = args.per

    def show(title, counter):
        print("== %s (Ir%s, %% of total) ==" % (title, "/request" if per != 1 else ""))
        for name, cost in counter.most_common(args.top):
            obj = (obj_of.get(name) or "?").rsplit("/", 1)[-1]
            print("%10.1f  %5.1f%%  %s  [%s]" % (cost / per, 100.0 * cost / total, name, obj))
        print()

    print("total %d Ir, %.1f per unit\n" % (total, total / per))
    show("exclusive", self_cost)
    show("inclusive", inclusive(self_cost, calls))
    print("== exclusive by object (Ir%s, %% of total) ==" % ("/request" if per != 1 else ""))
    by_obj = collections.Counter()
    for name, cost in self_cost.items():
        by_obj[(obj_of.get(name) or "?").rsplit("/", 1)[-1]] += cost
    for obj, cost in by_obj.most_common():
        print("%10.1f  %5.1f%%  %s" % (cost / per, 100.0 * cost / total, obj))
    print()
    print("== calls%s of allocator and copy functions ==" % (" per request" if per != 1 else ""))
    for name in ("malloc", "calloc", "realloc", "free", "__memcpy_avx_unaligned_erms",
                 "memcpy", "__memmove_avx_unaligned_erms", "fg_arena_alloc", "router_match"):
        if n_calls[name]:
            print("%10.2f  %s" % (n_calls[name] / per, name))
    for callee in args.callers:
        print()
        print("== callers of %s (calls, Ir inclusive%s) ==" % (callee, " per request" if per != 1 else ""))
        rows = [(n, caller) for (caller, c), n in pair_calls.items() if c == callee]
        for n, caller in sorted(rows, reverse=True):
            print("%10.2f  %10.1f  %s" % (n / per, calls[(caller, callee)] / per, caller))
    return 0


if __name__ == "__main__":
    sys.exit(main())
