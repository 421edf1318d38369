# install.cmake — what `cmake --install BUILD [--prefix DIR]` (and `make install PREFIX=DIR`) puts
# where, with GNUInstallDirs' names:
#   include/glmoe.h               the public header
#   lib/libglmoe.so.X.Y.Z         the shared library, SONAME libglmoe.so.X (X: GLMOE_VERSION_MAJOR),
#   lib/libglmoe.so.X, .so        with its two links
#   lib/libglmoe.a                the static library (glmoe_core: also carries glmoe's internal,
#                                 gm_-prefixed symbols)
#   lib/libglmoe-cuda.so          the CUDA backend's module, when it was built (cmake/cuda.cmake);
#                                 libglmoe finds it next to itself, a program in bin/ in ../lib
#   lib/pkgconfig/glmoe.pc        `pkg-config --cflags --libs glmoe` links the shared library;
#                                 with --static, Libs.private adds what libglmoe.a needs (the CUDA
#                                 libraries never: the module brings its own)
#   bin/glmoe                     the command-line tool
# tests/install/test_install.sh installs into a temporary prefix and builds examples/hello.c against
# it both ways.
include(GNUInstallDirs)

set_target_properties(glmoe_core PROPERTIES OUTPUT_NAME glmoe) # libglmoe.a beside libglmoe.so
install(TARGETS glmoe LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS glmoe_core ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${PROJECT_SOURCE_DIR}/include/glmoe.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS glmoe_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
if(GLMOE_HAVE_CUDA)
  install(TARGETS glmoe_cuda_module LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
endif()

# glmoe.pc. The prefix is relative to the .pc file's own directory (pkg-config's ${pcfiledir}).
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  message(FATAL_ERROR "glmoe: an absolute CMAKE_INSTALL_LIBDIR is not supported (glmoe.pc finds the prefix from its own place)")
else()
  file(RELATIVE_PATH GLMOE_PC_PREFIX "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
  string(REGEX REPLACE "/$" "" GLMOE_PC_PREFIX "${GLMOE_PC_PREFIX}")
endif()
# What libglmoe.a needs besides itself: the dependencies as their pkg-config files give them, then
# zlib, OpenMP (libgomp through -fopenmp), libm, libdl (the module loader) and threads.
set(glmoe_pc_private ${OPENBLAS_LDFLAGS} ${JANSSON_LDFLAGS} ${ONIG_LDFLAGS} ${UTF8PROC_LDFLAGS} -lz ${OpenMP_C_FLAGS} -lm)
foreach(lib ${CMAKE_DL_LIBS})
  list(APPEND glmoe_pc_private -l${lib})
endforeach()
list(APPEND glmoe_pc_private -lpthread)
list(REMOVE_DUPLICATES glmoe_pc_private)
list(REMOVE_ITEM glmoe_pc_private -L/usr/lib/x86_64-linux-gnu -L/usr/lib -L/lib) # the linker's own
string(REPLACE ";" " " GLMOE_PC_LIBS_PRIVATE "${glmoe_pc_private}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/glmoe.pc.in ${CMAKE_BINARY_DIR}/glmoe.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/glmoe.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
