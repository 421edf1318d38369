#!/usr/bin/env bash
# test_install.sh BUILD REPO SANITIZE HAVE_CUDA — `cmake --install` into a temporary prefix, then
# what a user does with it (cmake/install.cmake lists the files):
#   - the files are there: glmoe.h, libglmoe.so.X.Y.Z with SONAME libglmoe.so.X and both links,
#     libglmoe.a, glmoe.pc, bin/glmoe, and libglmoe-cuda.so in a CUDA build;
#   - `pkg-config --modversion glmoe` is the header's version;
#   - examples/hello.c, the README's program, builds with `cc hello.c $(pkg-config --cflags --libs
#     glmoe)` and runs on the default model (models/glmoe-demo), its text the same as `glmoe
#     generate` with the same settings;
#   - it links statically too (libglmoe.a with `pkg-config --static`'s Libs.private) and needs no
#     libglmoe.so then, and prints the same text;
#   - the installed bin/glmoe runs, and a program installed in PREFIX/bin finds the CUDA module in
#     PREFIX/lib (tests/install/find_module.c).
# SANITIZE=ON (make asan): the library is instrumented, so the programs are built with the same
# sanitizers.
set -u
build=$1
repo=$2
sanitize=${3:-OFF}
have_cuda=${4:-OFF}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
failed=0
fail() { echo "FAIL: $*" >&2; failed=1; }
cflags=(-std=c11 -Wall -Wextra -Werror)
[ "$sanitize" = ON ] && cflags+=(-fsanitize=address,undefined)

cmake --install "$build" --prefix "$prefix" > "$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; fail "cmake --install"; exit 1; }
v=$(sed -n 's/^#define GLMOE_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\).*/\2/p' "$repo/include/glmoe.h" | paste -sd.)
major=${v%%.*}
lib=$prefix/lib
for f in include/glmoe.h lib/libglmoe.so.$v lib/libglmoe.a lib/pkgconfig/glmoe.pc bin/glmoe; do
    [ -f "$prefix/$f" ] || fail "not installed: $f"
done
[ "$(readlink "$lib/libglmoe.so.$major")" = "libglmoe.so.$v" ] || fail "libglmoe.so.$major does not link to libglmoe.so.$v"
[ "$(readlink "$lib/libglmoe.so")" = "libglmoe.so.$major" ] || fail "libglmoe.so does not link to libglmoe.so.$major"
soname=$(readelf -d "$lib/libglmoe.so.$v" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = "libglmoe.so.$major" ] || fail "SONAME \"$soname\", want libglmoe.so.$major"
if [ "$have_cuda" = ON ]; then [ -f "$lib/libglmoe-cuda.so" ] || fail "not installed: lib/libglmoe-cuda.so"; fi

export PKG_CONFIG_PATH=$lib/pkgconfig
[ "$(pkg-config --modversion glmoe)" = "$v" ] || fail "pkg-config --modversion glmoe: $(pkg-config --modversion glmoe 2>&1), want $v"

# The README's command, as a user types it. hello runs on --device auto: where there is a GPU it is
# hidden, so that hello and `glmoe generate --device cpu` compute the same float32 logits.
export CUDA_VISIBLE_DEVICES=
cp "$repo/examples/hello.c" "$tmp/hello.c"
cd "$tmp" || exit 1
# shellcheck disable=SC2046
if cc "${cflags[@]}" hello.c $(pkg-config --cflags --libs glmoe) -o hello 2> cc.log; then
    ldd ./hello | grep -q "libglmoe.so.$major => $lib/" 2>/dev/null ||
        LD_LIBRARY_PATH=$lib ldd ./hello | grep -q "libglmoe.so.$major => $lib/" || fail "hello does not use $lib/libglmoe.so.$major"
    LD_LIBRARY_PATH=$lib timeout 60 ./hello "$repo/models/glmoe-demo" > hello.out 2> hello.err || fail "hello: exit $?: $(cat hello.err)"
else
    fail "cc hello.c \$(pkg-config --cflags --libs glmoe): $(cat cc.log)"
fi
echo "hello: $(cat hello.out 2>/dev/null)"
# The same settings through the CLI: its text must be in hello's (hello prints the prompt first).
"$prefix/bin/glmoe" generate -m "$repo/models/glmoe-demo" -p "The State of the Union" -n 32 --temp 0.8 --top-p 0.95 \
    --seed 1 --device cpu > cli.out 2> cli.err || fail "installed glmoe generate: $(cat cli.err)"
want=$(sed -e 's/[[:space:]]*$//' cli.out)
[ -n "$want" ] || fail "glmoe generate printed nothing"
case "$(cat hello.out 2>/dev/null)" in
"The State of the Union"*"$want"*) ;;
*) fail "hello's text differs from glmoe generate's: \"$(cat hello.out 2>/dev/null)\" vs \"$want\"" ;;
esac

# Statically: libglmoe.a and the private libraries, no libglmoe.so.
# shellcheck disable=SC2046
if cc "${cflags[@]}" hello.c $(pkg-config --static --cflags --libs glmoe | sed 's/-lglmoe\b/-l:libglmoe.a/') -o hello_static 2> cc.log; then
    readelf -d hello_static | grep -q 'NEEDED.*libglmoe' && fail "hello_static still needs libglmoe.so"
    timeout 60 ./hello_static "$repo/models/glmoe-demo" > static.out 2> static.err || fail "hello_static: exit $?: $(cat static.err)"
    cmp -s hello.out static.out || fail "hello_static printed \"$(cat static.out)\", hello \"$(cat hello.out 2>/dev/null)\""
else
    fail "cc hello.c \$(pkg-config --static --cflags --libs glmoe) with libglmoe.a: $(cat cc.log)"
fi

# An installed program finds the installed CUDA module (PREFIX/bin/../lib).
if [ "$have_cuda" = ON ]; then
    # shellcheck disable=SC2046
    if cc "${cflags[@]}" -I"$repo/src" -DGLMOE_HAVE_CUDA "$repo/tests/install/find_module.c" \
        $(pkg-config --static --cflags --libs glmoe | sed 's/-lglmoe\b/-l:libglmoe.a/') -o "$prefix/bin/find_module" 2> cc.log; then
        found=$(env -u GLMOE_CUDA_MODULE "$prefix/bin/find_module" 2>&1) || fail "an installed program: $found"
        [ "$(realpath "$found" 2>/dev/null)" = "$(realpath "$lib/libglmoe-cuda.so")" ] ||
            fail "an installed program found the module at \"$found\", want $lib/libglmoe-cuda.so"
        echo "module from $prefix/bin: $found"
    else
        fail "find_module.c: $(cat cc.log)"
    fi
fi
exit $failed
