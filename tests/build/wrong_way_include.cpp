// Must NOT compile: netprobe_io does not declare netprobe_probes, so the probes' headers are invisible to
// it (packaging/cmake/NetprobeLibrary.cmake). tests/build/CMakeLists.txt expects this exact failure.
#include "probes/probe.h"
