# sprig_add_proto_library(): nanopb messages and sprig service code from .proto files, built
# into one static library.
#
#   sprig_add_proto_library(<target>
#     PROTOS a.proto sub/b.proto ...      .proto files (relative to the current source dir or
#                                         absolute)
#     [PROTO_ROOT dir]                    where proto names start (default: the current source
#                                         dir); `import` statements and the generated #include
#                                         paths are relative to it
#     [IMPORT_DIRS dir ...]               more roots: for imports, and for PROTOS that live
#                                         under one of them instead of PROTO_ROOT
#     [OPTIONS x.options ...]             nanopb options files given explicitly. One named like
#                                         a proto (echo.options for echo.proto) applies to that
#                                         proto; one that matches no proto applies to all of
#                                         them. Without one, nanopb reads NAME.options found
#                                         beside the proto's name under the roots, as usual.
#   )
#
# For each proto NAME.proto (NAME relative to its root) the library gets nanopb's NAME.pb.c and
# protoc-gen-sprig's NAME.sprig.c; NAME.pb.h and NAME.sprig.h land in the library's include
# directory (PUBLIC), so `#include "NAME.sprig.h"` works for anything linking <target>. The
# library links sprig::rpc (PUBLIC). All PROTOS go through the plugin in one protoc run, so names
# and service ids are checked for collisions across the whole library.
#
# Works in sprig's own tree (include(SprigProto) after the rpc module) and from an installed
# sprig (sprigConfig.cmake includes this file; the plugin is found through
# SprigProtoPlugin.cmake installed beside it). Set SPRIG_PROTOC_GEN_SPRIG to use another plugin,
# SPRIG_PYTHON for another Python (it needs google.protobuf).
#
# Not tracked as build dependencies: .proto files imported from outside PROTOS (touch a proto
# of the library, or rebuild, after changing one).

include_guard(GLOBAL)
include(GNUInstallDirs)

set(SPRIG_PYTHON /usr/bin/python3 CACHE FILEPATH "Python with google.protobuf, for code generators")
# Not REQUIRED here, so that find_package(sprig) works without them for projects that do not
# generate code; sprig_add_proto_library() says what is missing.
find_program(SPRIG_PROTOC protoc)
find_program(SPRIG_NANOPB_GENERATOR nanopb_generator.py PATHS /usr/bin)
# nanopb.proto, for protos that set nanopb options inline (import "nanopb.proto").
find_path(SPRIG_NANOPB_PROTO_DIR nanopb.proto
  PATHS /usr/lib/python3/dist-packages/proto /usr/share/nanopb/generator/proto
  NO_CMAKE_FIND_ROOT_PATH)

# Where the plugin is. In a source tree: codegen/ beside this cmake/ directory; this also sets
# up the installation of the plugin and of the CMake modules. Installed: SprigProtoPlugin.cmake
# (written below, installed beside this file) knows the plugin's path relative to it.
set(_sprig_proto_source_plugin "${CMAKE_CURRENT_LIST_DIR}/../codegen/protoc-gen-sprig")
if(EXISTS "${_sprig_proto_source_plugin}")
  get_filename_component(_sprig_proto_source_plugin "${_sprig_proto_source_plugin}" ABSOLUTE)
  if(NOT SPRIG_PROTOC_GEN_SPRIG)
    set(SPRIG_PROTOC_GEN_SPRIG "${_sprig_proto_source_plugin}")
  endif()
  # Installation (set up once, thanks to include_guard): the plugin in libexec/sprig, the
  # modules in the package's CMake directory, and SprigProtoPlugin.cmake with the relative path
  # from the one to the other (so that `cmake --install --prefix ...` anywhere works).
  file(RELATIVE_PATH _sprig_proto_rel "${CMAKE_INSTALL_FULL_LIBDIR}/cmake/sprig"
       "${CMAKE_INSTALL_FULL_LIBEXECDIR}/sprig")
  file(CONFIGURE OUTPUT "${CMAKE_BINARY_DIR}/sprig-codegen/SprigProtoPlugin.cmake"
    CONTENT "# Written by SprigProto.cmake: where the installed protoc-gen-sprig is.
set(SPRIG_PROTOC_GEN_SPRIG \"\${CMAKE_CURRENT_LIST_DIR}/@_sprig_proto_rel@/protoc-gen-sprig\")
" @ONLY)
  install(PROGRAMS "${_sprig_proto_source_plugin}"
    DESTINATION ${CMAKE_INSTALL_LIBEXECDIR}/sprig)
  install(FILES "${CMAKE_CURRENT_LIST_DIR}/SprigProto.cmake"
                "${CMAKE_CURRENT_LIST_DIR}/SprigNanopb.cmake"
                "${CMAKE_BINARY_DIR}/sprig-codegen/SprigProtoPlugin.cmake"
    DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/sprig)
elseif(NOT SPRIG_PROTOC_GEN_SPRIG AND EXISTS "${CMAKE_CURRENT_LIST_DIR}/SprigProtoPlugin.cmake")
  include("${CMAKE_CURRENT_LIST_DIR}/SprigProtoPlugin.cmake")
  get_filename_component(SPRIG_PROTOC_GEN_SPRIG "${SPRIG_PROTOC_GEN_SPRIG}" ABSOLUTE)
endif()
# Global, so that the function sees it from any directory.
set_property(GLOBAL PROPERTY SPRIG_PROTOC_GEN_SPRIG "${SPRIG_PROTOC_GEN_SPRIG}")

# The plugin's relative path under `root` for `file`, or "" if it is not under it.
function(_sprig_proto_rel out root file)
  file(RELATIVE_PATH rel "${root}" "${file}")
  if(rel MATCHES "^\\.\\./" OR IS_ABSOLUTE "${rel}")
    set(rel "")
  endif()
  set(${out} "${rel}" PARENT_SCOPE)
endfunction()

function(sprig_add_proto_library target)
  cmake_parse_arguments(ARG "" "PROTO_ROOT" "PROTOS;IMPORT_DIRS;OPTIONS" ${ARGN})
  if(ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "sprig_add_proto_library(${target}): unknown arguments "
                        "'${ARG_UNPARSED_ARGUMENTS}'")
  endif()
  if(NOT ARG_PROTOS)
    message(FATAL_ERROR "sprig_add_proto_library(${target}): PROTOS is empty")
  endif()
  if(NOT TARGET sprig::rpc)
    message(FATAL_ERROR "sprig_add_proto_library(${target}): sprig::rpc does not exist "
                        "(configure sprig with -DSPRIG_WITH_RPC=ON)")
  endif()
  get_property(plugin GLOBAL PROPERTY SPRIG_PROTOC_GEN_SPRIG)
  foreach(need plugin SPRIG_PROTOC SPRIG_NANOPB_GENERATOR)
    if(NOT ${need} OR NOT EXISTS "${${need}}")
      message(FATAL_ERROR "sprig_add_proto_library(${target}): ${need} not found "
                          "('${${need}}'); Debian: apt-get install protobuf-compiler nanopb "
                          "python3-protobuf")
    endif()
  endforeach()
  if(NOT ARG_PROTO_ROOT)
    set(ARG_PROTO_ROOT "${CMAKE_CURRENT_SOURCE_DIR}")
  endif()
  get_filename_component(root "${ARG_PROTO_ROOT}" ABSOLUTE)
  set(roots "${root}")
  foreach(dir IN LISTS ARG_IMPORT_DIRS)
    get_filename_component(dir "${dir}" ABSOLUTE)
    list(APPEND roots "${dir}")
  endforeach()
  list(REMOVE_DUPLICATES roots)
  set(include_args)
  foreach(dir IN LISTS roots)
    list(APPEND include_args "-I${dir}")
  endforeach()
  set(protoc_include_args ${include_args})
  if(SPRIG_NANOPB_PROTO_DIR)
    list(APPEND protoc_include_args "-I${SPRIG_NANOPB_PROTO_DIR}")
  endif()

  set(out_dir "${CMAKE_CURRENT_BINARY_DIR}/${target}_gen")
  # The generators run in out_dir (so nanopb's search for NAME.options in "." finds nothing
  # stray): it must exist before the first build.
  file(MAKE_DIRECTORY "${out_dir}")
  get_property(plugin GLOBAL PROPERTY SPRIG_PROTOC_GEN_SPRIG)

  # A wrapper so that protoc runs the plugin with SPRIG_PYTHON (whatever PATH says, and even if
  # the plugin file lost its executable bit).
  set(wrapper "${CMAKE_BINARY_DIR}/sprig-codegen/protoc-gen-sprig")
  file(CONFIGURE OUTPUT "${wrapper}"
    CONTENT "#!/bin/sh\nexec \"${SPRIG_PYTHON}\" \"${plugin}\" \"$@\"\n" @ONLY)
  file(CHMOD "${wrapper}" PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ
       GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)

  # Absolute proto paths, their names under a root, and explicit options files by stem.
  set(abs_protos)
  set(names)
  foreach(proto IN LISTS ARG_PROTOS)
    get_filename_component(abs "${proto}" ABSOLUTE)
    if(NOT EXISTS "${abs}")
      message(FATAL_ERROR "sprig_add_proto_library(${target}): ${proto} does not exist")
    endif()
    set(name "")
    foreach(dir IN LISTS roots)
      _sprig_proto_rel(rel "${dir}" "${abs}")
      if(rel)
        set(name "${rel}")
        break()
      endif()
    endforeach()
    if(NOT name)
      message(FATAL_ERROR "sprig_add_proto_library(${target}): ${proto} is under neither "
                          "PROTO_ROOT (${root}) nor IMPORT_DIRS")
    endif()
    list(APPEND abs_protos "${abs}")
    list(APPEND names "${name}")
  endforeach()
  set(options_files)
  set(options_stems)
  foreach(opt IN LISTS ARG_OPTIONS)
    get_filename_component(abs "${opt}" ABSOLUTE)
    if(NOT EXISTS "${abs}")
      message(FATAL_ERROR "sprig_add_proto_library(${target}): ${opt} does not exist")
    endif()
    get_filename_component(stem "${abs}" NAME_WE)
    list(APPEND options_files "${abs}")
    list(APPEND options_stems "${stem}")
  endforeach()
  set(proto_stems)
  foreach(abs IN LISTS abs_protos)
    get_filename_component(stem "${abs}" NAME_WE)
    list(APPEND proto_stems "${stem}")
  endforeach()
  set(shared_options "")
  foreach(opt stem IN ZIP_LISTS options_files options_stems)
    if(NOT stem IN_LIST proto_stems)
      if(shared_options)
        message(FATAL_ERROR "sprig_add_proto_library(${target}): more than one OPTIONS file "
                            "matches no proto (${shared_options}, ${opt}); name each after "
                            "its proto")
      endif()
      set(shared_options "${opt}")
    endif()
  endforeach()

  # nanopb, one proto at a time.
  set(sources)
  set(sprig_outputs)
  foreach(abs name IN ZIP_LISTS abs_protos names)
    string(REGEX REPLACE "\\.proto$" "" stem_path "${name}")
    get_filename_component(stem "${abs}" NAME_WE)
    set(opt_args)
    set(deps "${abs}")
    list(FIND options_stems "${stem}" idx)
    if(idx GREATER -1)
      list(GET options_files ${idx} opt)
      set(opt_args -f "${opt}")
      list(APPEND deps "${opt}")
    elseif(shared_options)
      set(opt_args -f "${shared_options}")
      list(APPEND deps "${shared_options}")
    else()
      foreach(dir IN LISTS roots)
        if(EXISTS "${dir}/${stem_path}.options")
          list(APPEND deps "${dir}/${stem_path}.options")
          break()
        endif()
      endforeach()
    endif()
    add_custom_command(
      OUTPUT "${out_dir}/${stem_path}.pb.c" "${out_dir}/${stem_path}.pb.h"
      COMMAND ${CMAKE_COMMAND} -E make_directory "${out_dir}"
      COMMAND "${SPRIG_PYTHON}" "${SPRIG_NANOPB_GENERATOR}" -q ${include_args} -D "${out_dir}"
              ${opt_args} "${abs}"
      DEPENDS ${deps}
      WORKING_DIRECTORY "${out_dir}"
      COMMENT "nanopb: ${name}"
      VERBATIM)
    list(APPEND sources "${out_dir}/${stem_path}.pb.c")
    list(APPEND sprig_outputs "${out_dir}/${stem_path}.sprig.c" "${out_dir}/${stem_path}.sprig.h")
  endforeach()

  # protoc-gen-sprig, every proto in one run (all_files: a placeholder for protos without
  # services, so that the outputs are known here).
  add_custom_command(
    OUTPUT ${sprig_outputs}
    COMMAND ${CMAKE_COMMAND} -E make_directory "${out_dir}"
    COMMAND "${SPRIG_PROTOC}" "--plugin=protoc-gen-sprig=${wrapper}"
            "--sprig_out=all_files:${out_dir}" ${protoc_include_args} ${abs_protos}
    DEPENDS ${abs_protos} "${plugin}" "${wrapper}"
    WORKING_DIRECTORY "${out_dir}"
    COMMENT "protoc-gen-sprig: ${names}"
    VERBATIM)
  foreach(out IN LISTS sprig_outputs)
    if(out MATCHES "\\.c$")
      list(APPEND sources "${out}")
    endif()
  endforeach()

  add_library(${target} STATIC ${sources})
  target_include_directories(${target} PUBLIC "$<BUILD_INTERFACE:${out_dir}>")
  target_link_libraries(${target} PUBLIC sprig::rpc)
  set_target_properties(${target} PROPERTIES C_STANDARD 11 C_STANDARD_REQUIRED ON
                                             C_EXTENSIONS OFF)
  # In sprig's own tree the generated code is held to the project's warning flags.
  if(COMMAND sprig_target_warnings)
    sprig_target_warnings(${target})
  endif()
endfunction()
