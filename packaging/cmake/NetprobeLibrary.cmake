# netprobe_library(<part> SOURCES ... [PUBLIC deps...] [PRIVATE deps...])
#
# One library per folder, named netprobe_<part>, whose headers are included as "<part>/<file>.h".
# Include visibility follows the declared dependencies: each library exposes a directory of the build
# tree that holds a single symlink, <part> -> its source folder, so a file sees the headers of its own
# part and of the libraries it links (PUBLIC ones transitively), and an include of any other part fails
# to compile ("No such file or directory") instead of quietly creating a dependency.
function(netprobe_library part)
  cmake_parse_arguments(A "" "" "SOURCES;PUBLIC;PRIVATE" ${ARGN})
  set(target netprobe_${part})
  if(A_SOURCES)
    add_library(${target} ${A_SOURCES})
    set(scope PUBLIC)
  else()
    add_library(${target} INTERFACE)  # headers only
    set(scope INTERFACE)
  endif()
  netprobe_expose_folder(${target} ${part} ${CMAKE_CURRENT_SOURCE_DIR} ${scope})
  if(A_PUBLIC)
    target_link_libraries(${target} ${scope} ${A_PUBLIC})
  endif()
  if(A_PRIVATE)
    target_link_libraries(${target} PRIVATE ${A_PRIVATE})
  endif()
  set_property(GLOBAL APPEND PROPERTY NETPROBE_PARTS ${part})
  netprobe_check_headers(${part} ${target} ${A_PUBLIC} ${A_PRIVATE})
endfunction()

# Every header compiles on its own: one generated translation unit per header, which includes it first
# and nothing else, built with the part's own dependencies (a header that needs something it does not
# include, or a library its part does not declare, breaks the build here).
option(NETPROBE_CHECK_HEADERS "Compile every header of src/ and probes/ on its own" ON)
function(netprobe_check_headers part target)
  if(NOT NETPROBE_CHECK_HEADERS)
    return()
  endif()
  file(GLOB headers RELATIVE ${CMAKE_CURRENT_SOURCE_DIR} CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.h)
  if(NOT headers)
    return()
  endif()
  set(units)
  foreach(h ${headers})
    set(unit ${CMAKE_BINARY_DIR}/header_check/${part}/${h}.cpp)
    file(CONFIGURE OUTPUT ${unit} CONTENT "#include \"${part}/${h}\"  // must compile on its own\n")
    list(APPEND units ${unit})
  endforeach()
  add_library(${target}_headers OBJECT ${units})
  target_link_libraries(${target}_headers PRIVATE ${target} ${ARGN})
endfunction()

# Makes "<name>/<file>" resolve to <folder>/<file> for `target` (and its dependents, with PUBLIC).
function(netprobe_expose_folder target name folder scope)
  set(root ${CMAKE_BINARY_DIR}/include/${name})
  file(MAKE_DIRECTORY ${root})
  file(CREATE_LINK ${folder} ${root}/${name} SYMBOLIC)
  target_include_directories(${target} ${scope} $<BUILD_INTERFACE:${root}>)
endfunction()
