#!/usr/bin/env bash
# Dependency-caching helper for the Dockerfile (and for packaging/check-dockerfile.sh).
#
#   recipe.sh SRC DEST     Write into DEST a copy of the Cargo workspace in SRC that
#                          has every manifest (Cargo.toml, Cargo.lock, build.rs,
#                          .cargo/config.toml, rust-toolchain*) but only stub Rust
#                          sources. `cargo build` in DEST compiles every dependency
#                          and nothing of ours. Because the stubs depend only on the
#                          file *names*, DEST changes only when a manifest changes,
#                          so Docker reuses the dependency layer after a code edit.
#   recipe.sh --touch DIR  After the real sources were copied over the stubs, bump
#                          their mtimes so cargo rebuilds the workspace crates (a
#                          COPY keeps the files' original, possibly older, mtimes).
#
# Workspace members are found by their Cargo.toml, so a new member (e.g. bench/)
# needs no Dockerfile change.
set -euo pipefail

if [[ ${1:-} == --touch ]]; then
    dir=${2:?usage: recipe.sh --touch DIR}
    find "$dir" -path "$dir/target" -prune -o -type f -exec touch {} +
    exit 0
fi

src=${1:?usage: recipe.sh SRC DEST}
dest=${2:?usage: recipe.sh SRC DEST}
src=$(cd "$src" && pwd)
mkdir -p "$dest"

cd "$src"
# Every file that cargo reads to plan the build, outside target/ and hidden dirs
# (except .cargo/).
find . \( -name target -o -name .git -o -name node_modules \) -prune -o -type f \
    \( -name Cargo.toml -o -name Cargo.lock -o -name build.rs -o -name 'rust-toolchain' \
       -o -name 'rust-toolchain.toml' -o -path './.cargo/config.toml' -o -path './.cargo/config' \) \
    -print | sort | while read -r f; do
    mkdir -p "$dest/$(dirname "$f")"
    cp -p "$f" "$dest/$f"
done

# Stub every Rust source of every package (cargo auto-discovers targets from
# file names: src/lib.rs, src/main.rs, src/bin/*, tests/*, benches/*, examples/*).
# `fn main` keeps bin targets linkable; in a library it is just unused code.
find . \( -name target -o -name .git -o -name node_modules \) -prune -o -type f -name Cargo.toml -print |
    while read -r manifest; do
        pkg=$(dirname "$manifest")
        grep -q '^\[package\]' "$manifest" || continue
        find "$pkg" \( -name target -o -name .git \) -prune -o -type f -name '*.rs' ! -name build.rs -print |
            while read -r rs; do
                mkdir -p "$dest/$(dirname "$rs")"
                printf '#[allow(dead_code)]\nfn main() {}\n' >"$dest/$rs"
            done
    done
# Identical timestamps every run, so the recipe's content alone decides caching.
find "$dest" -exec touch -h -d '2000-01-01 00:00:00 UTC' {} +
