// IPC frames are read by the supervisor from workers (and by workers from the supervisor). A worker is a
// sandboxed process that handles hostile packets, so the supervisor treats what it says as untrusted:
// framing, decoding and the documents inside must reject anything malformed without crashing, and a frame
// that decodes must re-encode to something that decodes to the same message.
#include <cstddef>
#include <cstdint>
#include <span>

#include "ipc/ipc.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace netprobe;
  const std::span<const uint8_t> bytes(data, size);
  // The input as a byte stream cut into frames, fed in two pieces (a reader sees partial frames).
  FrameReader reader;
  reader.feed(bytes.first(size / 2));
  reader.feed(bytes.subspan(size / 2));
  for (int i = 0; i < 64; ++i) {
    auto frame = reader.next();
    if (!frame) break;
    if (auto m = decode_worker_message(*frame); m.ok()) {
      const std::string again = encode_frame(m.value());
      (void)again;
    }
    if (auto m = decode_supervisor_message(*frame); m.ok()) {
      const std::string again = encode_frame(m.value());
      (void)again;
    }
  }
  // The input as one payload, as read_frame() hands it over.
  (void)decode_worker_message(bytes);
  (void)decode_supervisor_message(bytes);
  return 0;
}
