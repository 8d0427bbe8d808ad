#!/usr/bin/env python3
"""Mutation check of the loom models: each mutant weakens one ordering of the ring protocol (or
of the GPU model in src/ring/device_model/, or releases a slot before its read ends, or waits
where the kernels do not); the loom tests must fail on every one.

    python3 scripts/loom-mutants.py            # all mutants; exit 1 unless every one is killed
    python3 scripts/loom-mutants.py pad stamp  # only those whose name contains a word given

Each mutant is applied to a copy of the tracked files (one copy, restored between mutants) and
built into one shared target dir, so only the crate itself recompiles per mutant. The unmutated
models run first, one at a time and timed; each mutant's build then runs them one at a time,
quickest first, and stops at the first that fails (the mutant is killed). A model that passes
every time survives it; a model that runs past its time limit (MUTANTS_TEST_TIMEOUT_S, 120 s, or
ten times its unmutated time if longer) is a failure of the check, not a kill: a mutant must be
caught by a model that fails, not by one that hangs.
"""
import json
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
    ("consumer seq load Acquire->Relaxed (ready: the one-slot fast path)", "src/ring/consumer.rs",
     "if self.ring.seq(pos).load(Ordering::Acquire) != pos + 1 {",
     "if self.ring.seq(pos).load(Ordering::Relaxed) != pos + 1 {"),
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
    ("continuation slots not stamped", "src/ring/consumer.rs",
     "        self.stamp(k);\n",
     "        let _ = k;\n"),
    ("stamping after the head publish", "src/ring/consumer.rs",
     "        self.stamp(k);\n        self.head += k;\n",
     "        let from = self.head;\n        self.head += k;\n        self.ring.publish_head(self.head);\n"
     "        for q in from + 1..from + k {\n            self.ring.seq(q).store(q + 1, Ordering::Relaxed);\n        }\n"),
    # Issue 20: the GPU model is the kernels' protocol, and the head push is no stronger than
    # cuStreamWriteValue64 (a relaxed store), so the consumer's fence before it is what counts.
    ("consumer's release fence before the device head push removed", "src/ring/consumer.rs",
     "        fence(Ordering::Release);\n",
     ""),
    ("device head load Acquire->Relaxed (ld.acquire.sys)", "src/ring/device_model/mod.rs",
     "self.control.head.load(Ordering::Acquire)",
     "self.control.head.load(Ordering::Relaxed)"),
    ("device batch publish fence removed (perdix_warp_publish)", "src/ring/device_model/batch.rs",
     "            fence(Ordering::AcqRel); // perdix_warp_publish's fence\n",
     ""),
    ("device message publish fence removed (perdix_claim_publish)", "src/ring/device_model/span.rs",
     "        fence(Ordering::AcqRel); // perdix_claim_publish's fence\n",
     ""),
    ("device pad publish fence removed (perdix_publish_pad)", "src/ring/device_model/span.rs",
     "        fence(Ordering::AcqRel); // perdix_publish_pad's fence\n",
     ""),
    ("device pad published only once the message's slots are free", "src/ring/device_model/span.rs",
     "if !self.wait_room(tail, &mut head, &mut stalled) {",
     "if !self.wait_room(tail + pad + k - 1, &mut head, &mut stalled) {"),
]

LOOM_ENV = {"RUSTFLAGS": "--cfg perdix_loom", "LOOM_MAX_PREEMPTIONS": "2", "CARGO_TERM_COLOR": "never"}
TEST_TIMEOUT_S = float(os.environ.get("MUTANTS_TEST_TIMEOUT_S", "120"))
BUILD = ["cargo", "test", "--release", "--no-default-features", "--test", "loom", "--no-run",
         "--message-format=json-render-diagnostics"]


def build(work, env):
    """Builds the loom test binary in `work`; its path, or None (with the errors printed)."""
    run = subprocess.run(BUILD, cwd=work, env=env, capture_output=True, text=True)
    exe = None
    for line in run.stdout.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("reason") == "compiler-artifact" and msg.get("executable") \
                and msg["target"]["name"] == "loom":
            exe = msg["executable"]
    if run.returncode != 0 or exe is None:
        print(run.stderr[-3000:])
        return None
    return exe


def run_test(exe, name, env, timeout):
    """Runs one model: ("ok" | "failed" | "timeout", seconds, output tail)."""
    start = time.time()
    try:
        run = subprocess.run([exe, "--exact", name, "--test-threads=1", "-q"], env=env,
                             capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.time() - start, ""
    verdict = "ok" if run.returncode == 0 else "failed"
    return verdict, time.time() - start, (run.stdout + run.stderr)[-2000:]


def main():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, check=True, capture_output=True,
                           text=True).stdout.split()
    work = tempfile.mkdtemp(prefix="perdix-mutants-")
    for f in files:
        if not os.path.exists(os.path.join(ROOT, f)):
            continue  # deleted in the work tree, not yet committed
        os.makedirs(os.path.dirname(os.path.join(work, f)) or work, exist_ok=True)
        shutil.copy2(os.path.join(ROOT, f), os.path.join(work, f))
    target = os.path.abspath(os.environ.get("MUTANTS_TARGET_DIR", os.path.join(ROOT, "target", "loom-mutants")))
    env = dict(os.environ, CARGO_TARGET_DIR=target, **LOOM_ENV)

    # The unmutated models must pass, or every mutant "dies" for the wrong reason; their times
    # order the mutants' runs and set each model's time limit.
    start = time.time()
    exe = build(work, env)
    if exe is None:
        sys.exit("loom-mutants: the unmutated loom tests do not build")
    names = [l[:-len(": test")] for l in subprocess.run([exe, "--list"], env=env, check=True,
             capture_output=True, text=True).stdout.splitlines() if l.endswith(": test")]
    base = {}
    for name in names:
        verdict, secs, out = run_test(exe, name, env, max(TEST_TIMEOUT_S, 600))
        if verdict != "ok":
            print(out)
            sys.exit(f"loom-mutants: the unmutated model {name} {verdict}")
        base[name] = secs
    order = sorted(names, key=lambda n: base[n])
    print(f"unmutated: {len(names)} models pass, {sum(base.values()):.1f} s "
          f"(build and runs {time.time() - start:.1f} s)", flush=True)

    words = sys.argv[1:]
    chosen = [m for m in MUTANTS if not words or any(w in m[0] for w in words)]
    survived, timed_out = [], []
    for name, path, text, replacement in chosen:
        full = os.path.join(work, path)
        pristine = open(full).read()
        if pristine.count(text) != 1:
            sys.exit(f"loom-mutants: {name!r}: its text occurs {pristine.count(text)} times in {path}")
        open(full, "w").write(pristine.replace(text, replacement))
        start = time.time()
        try:
            exe = build(work, env)
        finally:
            open(full, "w").write(pristine)
        if exe is None:
            sys.exit(f"loom-mutants: {name!r} does not compile")
        built = time.time() - start
        how, by = "SURVIVED", ""
        for model in order:
            verdict, _, _ = run_test(exe, model, env, max(TEST_TIMEOUT_S, 10 * base[model]))
            if verdict == "failed":
                how, by = "killed", f" (by {model})"
                break
            if verdict == "timeout":
                how, by = "TIMED OUT", f" ({model} ran past its limit)"
                break
        print(f"{how:10} {built:6.1f} s build, {time.time() - start - built:6.1f} s models  "
              f"{name}{by}", flush=True)
        if how == "SURVIVED":
            survived.append(name)
        elif how == "TIMED OUT":
            timed_out.append(name)
    shutil.rmtree(work, ignore_errors=True)
    killed = len(chosen) - len(survived) - len(timed_out)
    print(f"loom mutants: {killed} killed of {len(chosen)}")
    if survived or timed_out:
        sys.exit("loom-mutants: surviving mutants: " + "; ".join(survived)
                 + ("; timed out (a hang is not a kill): " + "; ".join(timed_out) if timed_out else ""))


if __name__ == "__main__":
    main()
