#!/usr/bin/env bash
# Runs every cargo-fuzz target of the repository's fuzz folders for a bounded time each.
#
# Usage (from any directory):
#   tests/fuzz/run.sh                 # every discovered fuzz folder
#   tests/fuzz/run.sh policy/fuzz     # only these folders (relative to the repo root, or absolute)
#
# Discovery: `*/fuzz` and `gateway/*/fuzz` under the repository root that hold a
# `fuzz_targets/` folder (today policy/fuzz; gateway/agency/fuzz once it exists).
#
# Environment:
#   FUZZ_SECONDS     fuzzing time per target, in seconds (default 60)
#   FUZZ_TARGETS     space-separated target names to run (default: all targets of each folder)
#   FUZZ_SANITIZER   address (default) or none; `none` if the sanitizer build fails
#   FUZZ_ARGS        extra libFuzzer arguments, e.g. "-max_len=8192"
#   CARGO_BUILD_JOBS cargo build parallelism (set 1 on a busy 2-core machine)
#
# For each folder the targets are built once, then each target runs with its seeds
# (<folder>/seeds/<target>/, committed) copied into <folder>/corpus/<target>/ (gitignored,
# grown by libFuzzer) and its dictionary <folder>/dicts/<target>.dict when there is one.
#
# cargo-fuzz needs nightly-only flags; the toolchain is stable, so every cargo-fuzz command
# runs with RUSTC_BOOTSTRAP=1. cargo-fuzz is installed from crates.io when missing.
#
# Exit status: 0 when every target ran its time without a crash; 1 when any target crashed
# (the crash files under <folder>/artifacts/<target>/ are printed with the command that
# reproduces them) or failed to build; 2 on usage errors.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
seconds="${FUZZ_SECONDS:-60}"
sanitizer="${FUZZ_SANITIZER:-address}"
export RUSTC_BOOTSTRAP=1

if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "FUZZ_SECONDS must be a positive integer, got '$seconds'" >&2
    exit 2
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked -j "${CARGO_BUILD_JOBS:-1}"
fi

dirs=()
if [ "$#" -gt 0 ]; then
    for d in "$@"; do
        case "$d" in
            /*) abs="$d" ;;
            *) abs="$root/$d" ;;
        esac
        if [ ! -d "$abs/fuzz_targets" ]; then
            echo "$d: not a fuzz folder (no fuzz_targets/)" >&2
            exit 2
        fi
        dirs+=("$(cd "$abs" && pwd)")
    done
else
    shopt -s nullglob
    for d in "$root"/*/fuzz "$root"/gateway/*/fuzz; do
        [ -d "$d/fuzz_targets" ] && dirs+=("$d")
    done
    shopt -u nullglob
fi
if [ "${#dirs[@]}" -eq 0 ]; then
    echo "no fuzz folders found under $root" >&2
    exit 2
fi

failed=()
crashes=()
for dir in "${dirs[@]}"; do
    rel="${dir#"$root"/}"
    echo "== $rel: building (sanitizer $sanitizer)"
    if ! (cd "$dir/.." && cargo fuzz build --fuzz-dir "$dir" --sanitizer "$sanitizer"); then
        failed+=("$rel: build failed")
        continue
    fi
    targets="$(cd "$dir/.." && cargo fuzz list --fuzz-dir "$dir")"
    for target in $targets; do
        if [ -n "${FUZZ_TARGETS:-}" ] && [[ " $FUZZ_TARGETS " != *" $target "* ]]; then
            continue
        fi
        corpus="$dir/corpus/$target"
        artifacts="$dir/artifacts/$target"
        mkdir -p "$corpus" "$artifacts"
        if [ -d "$dir/seeds/$target" ]; then
            cp -n "$dir/seeds/$target"/* "$corpus"/ 2>/dev/null || true
        fi
        args=(-max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1)
        if [ -f "$dir/dicts/$target.dict" ]; then
            args+=(-dict="$dir/dicts/$target.dict")
        fi
        # shellcheck disable=SC2206 # FUZZ_ARGS is a list of words on purpose.
        args+=(${FUZZ_ARGS:-})
        marker="$(mktemp)"
        echo "== $rel: $target for ${seconds}s"
        status=0
        (cd "$dir/.." && cargo fuzz run --fuzz-dir "$dir" --sanitizer "$sanitizer" "$target" "$corpus" -- "${args[@]}") || status=$?
        new="$(find "$artifacts" -type f -newer "$marker" | sort)"
        rm -f "$marker"
        if [ "$status" -ne 0 ] || [ -n "$new" ]; then
            failed+=("$rel: $target exited with status $status")
            for f in $new; do
                crashes+=("$f")
                echo "!! crash file: $f"
                echo "   reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir $dir --sanitizer $sanitizer $target $f"
            done
        fi
    done
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo
    echo "== fuzzing FAILED"
    printf '   %s\n' "${failed[@]}"
    for f in "${crashes[@]}"; do
        echo "   crash file: $f"
    done
    exit 1
fi
echo "== fuzzing passed: ${#dirs[@]} folder(s), ${seconds}s per target"
