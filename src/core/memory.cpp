#include "core/memory.h"

#include <malloc.h>

namespace netprobe {

void release_free_memory() noexcept { ::malloc_trim(0); }

}  // namespace netprobe
