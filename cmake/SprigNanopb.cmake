# nanopb for sprig: the `sprig_nanopb` interface target and sprig_nanopb_generate().
#
# Host builds link Debian's libnanopb-dev (find_package(nanopb)). Cross builds (no host library
# may be linked into firmware) get nanopb's headers only, copied from the host package into the
# build tree, so that sprig's portable libraries compile; the firmware links nanopb's pb_*.c
# from the source package (tools/bootstrap.sh --sources). Code generation always uses Debian's
# Python (/usr/bin/python3), which has google.protobuf.

include_guard(GLOBAL)

set(SPRIG_PYTHON /usr/bin/python3 CACHE FILEPATH "Python with google.protobuf, for code generators")
find_program(SPRIG_NANOPB_GENERATOR nanopb_generator.py PATHS /usr/bin REQUIRED)

if(NOT TARGET sprig_nanopb)
  add_library(sprig_nanopb INTERFACE)
  if(CMAKE_CROSSCOMPILING)
    find_path(SPRIG_NANOPB_HOST_INCLUDE pb.h PATHS /usr/include NO_CMAKE_FIND_ROOT_PATH REQUIRED)
    set(_inc ${CMAKE_BINARY_DIR}/nanopb-include)
    foreach(h pb.h pb_common.h pb_encode.h pb_decode.h)
      configure_file(${SPRIG_NANOPB_HOST_INCLUDE}/${h} ${_inc}/${h} COPYONLY)
    endforeach()
    target_include_directories(sprig_nanopb INTERFACE $<BUILD_INTERFACE:${_inc}>)
  else()
    find_package(nanopb CONFIG REQUIRED)
    target_link_libraries(sprig_nanopb INTERFACE nanopb::protobuf-nanopb-static)
  endif()
  install(TARGETS sprig_nanopb EXPORT sprigTargets)
endif()

# sprig_nanopb_generate(<out_var> PROTO <file.proto> PROTO_ROOT <dir> OUT_DIR <dir>
#                       [OPTIONS_FILE <file.options>])
# Runs nanopb's generator on one .proto; appends the generated .pb.c to <out_var>; the .pb.h
# lands beside it under OUT_DIR, at the proto's path relative to PROTO_ROOT.
function(sprig_nanopb_generate out_var)
  cmake_parse_arguments(ARG "" "PROTO;PROTO_ROOT;OUT_DIR;OPTIONS_FILE" "" ${ARGN})
  file(RELATIVE_PATH rel ${ARG_PROTO_ROOT} ${ARG_PROTO})
  string(REGEX REPLACE "\\.proto$" "" stem ${rel})
  set(outs ${ARG_OUT_DIR}/${stem}.pb.c ${ARG_OUT_DIR}/${stem}.pb.h)
  set(opts)
  set(deps ${ARG_PROTO})
  if(ARG_OPTIONS_FILE)
    list(APPEND opts -f ${ARG_OPTIONS_FILE})
    list(APPEND deps ${ARG_OPTIONS_FILE})
  else()
    get_filename_component(dir ${ARG_PROTO} DIRECTORY)
    get_filename_component(name ${ARG_PROTO} NAME_WE)
    if(EXISTS ${dir}/${name}.options)
      list(APPEND deps ${dir}/${name}.options)
    endif()
  endif()
  add_custom_command(
    OUTPUT ${outs}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${ARG_OUT_DIR}
    COMMAND ${SPRIG_PYTHON} ${SPRIG_NANOPB_GENERATOR} -q -I ${ARG_PROTO_ROOT} -D ${ARG_OUT_DIR}
            ${opts} ${ARG_PROTO}
    DEPENDS ${deps}
    COMMENT "nanopb: ${rel}"
    VERBATIM)
  set(${out_var} ${${out_var}} ${ARG_OUT_DIR}/${stem}.pb.c PARENT_SCOPE)
endfunction()
