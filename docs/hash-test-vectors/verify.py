#!/usr/bin/env python3
"""Independent check of a `cpor export` (CloudEvents JSON Lines), stdlib only.

Usage: python3 verify.py [FILE | -]   (stdin when no FILE or "-")
Checks positions are gapless and every `hash` is SHA-256(previous hash ||
RFC 8785 canonical JSON of the event without `hash`). Exit 0 when all hold,
else 1 naming the first bad position.
"""
import hashlib, json, sys

def number(x):  # ECMAScript Number.prototype.toString of the double x stands for
    x = float(x)  # an integer beyond 2**53 becomes the nearest double, as in JS
    if x != x or abs(x) == float("inf"): raise ValueError("NaN or Infinity")
    if x == 0: return "0"
    mantissa, _, exp = repr(abs(x)).partition("e")  # repr: shortest round-trip digits
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")  # value = 0.DIGITS * 10**n
    n = len(whole) + int(exp or 0) - (len(whole + frac) - len(digits))
    digits, sign = digits.rstrip("0"), "-" if x < 0 else ""
    k = len(digits)
    if k <= n <= 21: return sign + digits + "0" * (n - k)
    if 0 < n <= 21: return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0: return sign + "0." + "0" * -n + digits
    return sign + digits[0] + ("." + digits[1:] if k > 1 else "") + "e%+d" % (n - 1)

def jcs(v):  # RFC 8785: UTF-16 member order, JSON.stringify strings, ES numbers
    if v is None or isinstance(v, bool): return json.dumps(v)
    if isinstance(v, (int, float)): return number(v)
    if isinstance(v, str): return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list): return "[" + ",".join(map(jcs, v)) + "]"
    keys = sorted(v, key=lambda key: key.encode("utf-16-be"))
    return "{" + ",".join(jcs(key) + ":" + jcs(v[key]) for key in keys) + "}"

def fail(message): print("verify: FAILED at " + message, file=sys.stderr); sys.exit(1)

def reject_constant(name): raise ValueError(name + " is not JSON")

source = open(sys.argv[1], "rb") if len(sys.argv) > 1 and sys.argv[1] != "-" else sys.stdin.buffer
previous, expected, count = None, None, 0
for line_no, line in enumerate(source, 1):
    if not line.strip(): continue
    try: event = json.loads(line.decode("utf-8"), parse_constant=reject_constant)
    except ValueError as error: fail("line %d (after position %s): not a JSON event: %s" % (line_no, expected and expected - 1, error))
    position = event.get("position") if isinstance(event, dict) else None
    if type(position) is not int or position < 1: fail("line %d: no integer `position`" % line_no)
    if expected is not None and position != expected: fail("position %d: expected next, found position %d (gap or reorder)" % (expected, position))
    try: computed = hashlib.sha256(((previous or "") + jcs({k: v for k, v in event.items() if k != "hash"})).encode("utf-8")).hexdigest()
    except (ValueError, OverflowError) as error: fail("position %d: not canonicalizable: %s" % (position, error))
    if previous is None and position > 1: computed = event.get("hash")  # export from mid-log: anchor trusted
    if event.get("hash") != computed: fail("position %d: hash %r, computed %s" % (position, event.get("hash"), computed))
    previous, expected, count = computed, position + 1, count + 1
if count == 0: fail("start: no events to verify")
print("verify: ok, %d events, positions %d..%d, last hash %s" % (count, expected - count, expected - 1, previous))
