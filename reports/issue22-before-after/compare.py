"""Before/after: the same rows, verdicts and figure names of every tool's output."""
import json, re, sys
from pathlib import Path
B, A = Path(sys.argv[1]), Path(sys.argv[2])

def cases(text):
    return [(m.group(1).strip(), m.group(2), m.group(3)) for m in re.finditer(r"^\s+\d+/\d+ (pass|fail|non-strict|not applicable|not run)\s+\[([\d.]+)\] (\S+)", text, re.M)]

def lines(text, prefix):
    return [l for l in text.splitlines() if l.startswith(prefix)]

def faults(text):
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^== fault \d+/\d+: (\S+).*\n\s+(pass|fail|non-strict|not applicable|not run)", text, re.M)]

def headline_labels(text):
    out = []
    on = False
    for l in text.splitlines():
        if l.startswith("headline"):
            on = True; out = []; continue
        if on and l.startswith("  ") and not l.startswith("  t="):
            out.append(re.split(r"\s{2,}", l.strip())[0])
        elif on and not l.startswith("  "):
            on = False
    return out

for name in sorted(p.name for p in B.glob("*.txt")):
    b, a = (B / name).read_text(), (A / name).read_text() if (A / name).exists() else ""
    print(f"## {name}")
    for what, f in (("cases", cases), ("fault rows", faults)):
        fb, fa = f(b), f(a)
        if fb or fa:
            same = sorted(fb) == sorted(fa)
            print(f"  {what}: before {len(fb)}, after {len(fa)}: {'same' if same else 'DIFFER'}")
            if not same:
                print("    only before:", sorted(set(fb) - set(fa))[:10]); print("    only after:", sorted(set(fa) - set(fb))[:10])
    hb, ha = headline_labels(b), headline_labels(a)
    if hb or ha:
        print(f"  headline rows: before {len(hb)}, after {len(ha)}; missing after: {sorted(set(hb)-set(ha))}; new: {sorted(set(ha)-set(hb))}")
    for prefix in ("result:", "exit", "threshold", "- ", "FAIL", "not run:", "not used"):
        lb, la = lines(b, prefix), lines(a, prefix)
        if lb != la:
            print(f"  {prefix!r} lines differ:"); [print("    -", x) for x in lb if x not in la]; [print("    +", x) for x in la if x not in lb]
        elif lb:
            print(f"  {prefix!r}: same ({len(lb)})")
