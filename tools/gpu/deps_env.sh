# deps_env.sh — sourced by tools/gpu/run_gpu.sh and run_bench.sh: makes glmoe's build
# dependencies usable on a GPU machine that has no package registry.
#
# Every .deb in $DEPS (the -dev packages of jansson, OpenBLAS, oniguruma, utf8proc, zlib, their
# runtime libraries and pkgconf, fetched here with `apt-get download`) is unpacked with dpkg -x
# into the private prefix $PREFIX, and pkg-config, the linker and the loader are pointed there;
# nothing is installed into the system. Sets CMAKE_EXTRA (an array) for the configure step.
CMAKE_EXTRA=()
if ls "$DEPS"/*.deb > /dev/null 2>&1; then
    rm -rf "$PREFIX" && mkdir -p "$PREFIX"
    for f in "$DEPS"/*.deb; do dpkg -x "$f" "$PREFIX"; done
    find "$PREFIX" -name '*.pc' -exec sed -i "s#=/usr#=$PREFIX/usr#g" {} +
    # Private requirements are for static linking (libmicrohttpd's names gnutls, whose -dev package
    # is not carried; the machine has its runtime library, which the shared link needs).
    find "$PREFIX" -name '*.pc' -exec sed -i '/^Requires.private:/d' {} +
    # Absolute symlinks (zlib's libz.so -> /lib/...) must point into the prefix too.
    find "$PREFIX" -type l -lname '/*' | while read -r l; do ln -sf "$PREFIX$(readlink "$l")" "$l"; done
    L=$PREFIX/usr/lib/x86_64-linux-gnu
    export PKG_CONFIG_LIBDIR=$L/pkgconfig:$L/openblas-pthread/pkgconfig:$PREFIX/usr/share/pkgconfig
    export LD_LIBRARY_PATH=$L:$L/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    export LIBRARY_PATH=$L:$L/openblas-pthread${LIBRARY_PATH:+:$LIBRARY_PATH}
    command -v pkg-config > /dev/null || CMAKE_EXTRA+=(-DPKG_CONFIG_EXECUTABLE=$PREFIX/usr/bin/pkgconf)
    CMAKE_EXTRA+=(-DCMAKE_PREFIX_PATH=$PREFIX/usr) # find_package(ZLIB) and the like
fi
