#!/usr/bin/env python3
"""Independent check of a `cpor export` (CloudEvents, one JSON per line), stdlib only.

Usage: python3 verify.py [FILE | -] [--public-key KEYFILE --checkpoints FILE]
       (stdin when no FILE, or "-")
Checks that positions are gapless and that every `hash` is the lowercase hex
SHA-256 of (previous hash, "" at position 1) + the RFC 8785 canonical JSON of
the event without `hash`. Exit 0 if all hold, else 1 naming the first bad position.
An export that starts after position 1 takes its first hash on trust.
With --public-key (64 hex characters of an Ed25519 key, `cpor keys show`) and
--checkpoints (`cpor export --checkpoints`), every checkpoint's signature is
checked (RFC 8032 over the RFC 8785 JSON of {hash, position, time}; needs the
`cryptography` package) and each event at a checkpoint's position must carry
the signed hash (docs/audit.md).
"""
import hashlib, json, sys

def number(x):  # ECMAScript Number.prototype.toString of the double x stands for
    x = float(x)  # an integer beyond 2**53 becomes the nearest double, as in JS
    if x != x or abs(x) == float("inf"): raise ValueError("NaN or Infinity")
    if x == 0: return "0"
    mantissa, _, exp = repr(abs(x)).partition("e")  # repr: shortest round-trip digits
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")  # abs(x) = 0.DIGITS * 10**n
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

def fail(where, what): print("verify: FAILED at %s: %s" % (where, what), file=sys.stderr); sys.exit(1)

def no_constant(name): raise ValueError(name + " is not JSON")

args, options = [], {}
argv = sys.argv[1:]
while argv:
    arg = argv.pop(0)
    if arg in ("--public-key", "--checkpoints") and argv: options[arg] = argv.pop(0)
    else: args.append(arg)
signed = {}  # position -> checkpoint, every signature checked
if options:
    if len(options) != 2: fail("start", "--public-key and --checkpoints go together")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.exceptions import InvalidSignature
    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(open(options["--public-key"]).read().strip()))
    for cp_line, text in enumerate(open(options["--checkpoints"], "rb"), 1):
        if not text.strip(): continue
        cp = json.loads(text.decode("utf-8"))
        message = jcs({k: cp[k] for k in ("hash", "position", "time")}).encode("utf-8")
        try: key.verify(bytes.fromhex(cp["signature"]), message)
        except (InvalidSignature, ValueError): fail("checkpoint line %d (position %s)" % (cp_line, cp.get("position")), "the signature does not verify with this public key")
        signed[cp["position"]] = cp
source = open(args[0], "rb") if args not in ([], ["-"]) else sys.stdin.buffer
previous, expected, first, count, matched, last_matched = "", None, None, 0, 0, None
for line_no, line in enumerate(source, 1):
    if not line.strip(): continue
    where = "position %d (line %d)" % (expected, line_no) if expected else "line %d" % line_no
    try: event = json.loads(line.decode("utf-8"), parse_constant=no_constant)
    except ValueError as error: fail(where, "not JSON: %s" % error)
    position = event.get("position") if isinstance(event, dict) else None
    if type(position) is not int or position < 1: fail(where, "no positive integer `position`")
    if expected is not None and position != expected: fail(where, "found position %d instead (gap or reorder)" % position)
    first = first or position
    try: computed = hashlib.sha256((previous + jcs({k: v for k, v in event.items() if k != "hash"})).encode("utf-8")).hexdigest()
    except (ValueError, OverflowError) as error: fail("position %d" % position, "no RFC 8785 form: %s" % error)
    if count == 0 and position > 1 and isinstance(event.get("hash"), str): computed = event["hash"]  # nothing to chain from
    if event.get("hash") != computed: fail("position %d" % position, "hash is %r, computed %s" % (event.get("hash"), computed))
    if position in signed:
        if computed != signed[position]["hash"]: fail("position %d" % position, "hash %s is not the one the service signed at %s (%s)" % (computed, signed[position]["time"], signed[position]["hash"]))
        matched, last_matched = matched + 1, position
    previous, expected, count = computed, position + 1, count + 1
if count == 0: fail("start", "no events")
if options: print("verify: %d signed checkpoint(s) match%s" % (matched, ", the last at position %d; %d event(s) after it covered only by the chain" % (last_matched, expected - 1 - last_matched) if last_matched else ""))
print("verify: ok, %d events, positions %d..%d, last hash %s%s" % (count, first, expected - 1, previous,
      " (first hash taken on trust)" if first > 1 else ""))
