#!/usr/bin/env python3
"""Mutation check of the loom models: each mutant weakens one ordering of the ring protocol (or
releases a slot before its read ends); the loom tests must fail on every one.

    python3 scripts/loom-mutants.py            # all mutants; exit 1 if any survives
    python3 scripts/loom-mutants.py pad stamp  # only those whose name contains a word given

Each mutant is applied to a copy of the tracked files (one copy, restored between mutants) and
built into one shared target dir, so only the crate itself recompiles per mutant.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (name, file, text, replacement): `text` must occur exactly once in `file`.
MUTANTS = [
    ("producer seq store Release->Relaxed", "src/ring/producer.rs",
     "self.ring.seq(pos).store(pos + 1, Ordering::Release);",
     "self.ring.seq(pos).store(pos + 1, Ordering::Relaxed);"),
    ("consumer seq load Acquire->Relaxed (poll's one-slot fast path)", "src/ring/consumer.rs",
     "if self.ring.seq(pos).load(Ordering::Acquire) == pos + 1 {",
     "if self.ring.seq(pos).load(Ordering::Relaxed) == pos + 1 {"),
    ("consumer seq load Acquire->Relaxed (poll_slow)", "src/ring/consumer.rs",
     "let seq = self.ring.seq(pos).load(Ordering::Acquire);",
     "let seq = self.ring.seq(pos).load(Ordering::Relaxed);"),
    ("head publish Release->Relaxed", "src/ring/shared.rs",
     "self.head.store(head, Ordering::Release);",
     "self.head.store(head, Ordering::Relaxed);"),
    ("head load Acquire->Relaxed", "src/ring/shared.rs",
     "self.head.load(Ordering::Acquire)",
     "self.head.load(Ordering::Relaxed)"),
    ("producer closed store Release->Relaxed", "src/ring/shared.rs",
     "self.producer_closed.store(true, Ordering::Release);",
     "self.producer_closed.store(true, Ordering::Relaxed);"),
    ("producer closed load Acquire->Relaxed", "src/ring/shared.rs",
     "self.producer_closed.load(Ordering::Acquire)",
     "self.producer_closed.load(Ordering::Relaxed)"),
    ("ring failed store Release->Relaxed", "src/ring/shared.rs",
     "self.consumer_state.store(state::FAILED, Ordering::Release);",
     "self.consumer_state.store(state::FAILED, Ordering::Relaxed);"),
    ("ring fault load Acquire->Relaxed", "src/ring/shared.rs",
     "if self.consumer_state.load(Ordering::Acquire) != state::FAILED {",
     "if self.consumer_state.load(Ordering::Relaxed) != state::FAILED {"),
    ("drain publishes the head before the callback", "src/ring/consumer.rs",
     "            self.with_message(header, &mut f);\n",
     "            self.ring.publish_head(self.head + 1);\n            self.with_message(header, &mut f);\n"),
    ("guard releases its slot before its read ends", "src/ring/guard.rs",
     "        let access = self.access.take();\n",
     "        self.consumer.release_one();\n        let access = self.access.take();\n"),
    # Issue 13: multi-slot messages.
    ("pad seq store Release->Relaxed", "src/ring/producer.rs",
     "self.ring.seq(at).store(at + 1, Ordering::Release);",
     "self.ring.seq(at).store(at + 1, Ordering::Relaxed);"),
    ("device pad seq store Release->Relaxed", "src/ring/device_model.rs",
     "self.ring.seq(at).store(at + 1, Ordering::Release);",
     "self.ring.seq(at).store(at + 1, Ordering::Relaxed);"),
    ("continuation slots not stamped", "src/ring/consumer.rs",
     "        self.stamp(k);\n",
     "        let _ = k;\n"),
    ("stamping after the head publish", "src/ring/consumer.rs",
     "        self.stamp(k);\n        self.head += k;\n",
     "        let from = self.head;\n        self.head += k;\n        self.ring.publish_head(self.head);\n"
     "        for q in from + 1..from + k {\n            self.ring.seq(q).store(q + 1, Ordering::Relaxed);\n        }\n"),
]

LOOM_ENV = {"RUSTFLAGS": "--cfg perdix_loom", "LOOM_MAX_PREEMPTIONS": "2", "CARGO_TERM_COLOR": "never"}
TIMEOUT_S = 300


def main():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, check=True, capture_output=True,
                           text=True).stdout.split()
    work = tempfile.mkdtemp(prefix="perdix-mutants-")
    for f in files:
        os.makedirs(os.path.dirname(os.path.join(work, f)) or work, exist_ok=True)
        shutil.copy2(os.path.join(ROOT, f), os.path.join(work, f))
    target = os.path.abspath(os.environ.get("MUTANTS_TARGET_DIR", os.path.join(ROOT, "target", "loom-mutants")))
    env = dict(os.environ, CARGO_TARGET_DIR=target, **LOOM_ENV)
    cmd = ["cargo", "test", "--release", "--no-default-features", "--test", "loom", "-q"]
    # The unmutated models must pass, or every mutant "dies" for the wrong reason.
    base = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    if base.returncode != 0:
        print(base.stdout[-3000:], base.stderr[-3000:])
        sys.exit("loom-mutants: the unmutated loom tests fail")
    words = sys.argv[1:]
    chosen = [m for m in MUTANTS if not words or any(w in m[0] for w in words)]
    survived = []
    for name, path, text, replacement in chosen:
        full = os.path.join(work, path)
        pristine = open(full).read()
        if pristine.count(text) != 1:
            sys.exit(f"loom-mutants: {name!r}: its text occurs {pristine.count(text)} times in {path}")
        open(full, "w").write(pristine.replace(text, replacement))
        start = time.time()
        try:
            run = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True,
                                 timeout=TIMEOUT_S)
            built = "error[" not in run.stderr and "could not compile" not in run.stderr
            if not built:
                print(run.stderr[-3000:])
                sys.exit(f"loom-mutants: {name!r} does not compile")
            killed = run.returncode != 0
            how = "killed" if killed else "SURVIVED"
        except subprocess.TimeoutExpired:
            killed, how = True, "killed (hang)"
        finally:
            open(full, "w").write(pristine)
        print(f"{how:14} {time.time() - start:6.1f} s  {name}", flush=True)
        if not killed:
            survived.append(name)
    shutil.rmtree(work, ignore_errors=True)
    print(f"loom mutants: {len(chosen) - len(survived)} killed of {len(chosen)}")
    if survived:
        sys.exit("loom-mutants: surviving mutants: " + "; ".join(survived))


if __name__ == "__main__":
    main()
