// libssh2's memory for the engine's sessions. Each session starts with a ~52 KB structure libssh2
// clears, and the engine keeps a host's session open until its idle timeout: a fan-out to 1,000
// hosts writes 52 MB of fresh memory, a page fault per 4 KiB (10-13 us each on a virtual machine,
// 5-8 % of the controller's CPU per host in bench/fanout). Blocks of 16 KiB and more come from
// huge-page chunks (engine/core/huge_pages.hpp) and are reused by size once freed; smaller ones
// from malloc. libssh2's free does not say a block's size: each carries it in a 16-byte header.
// Called on the event loop's thread only, as every libssh2 call of the engine is.
#pragma once
#include <cstddef>

namespace engine::ssh::session_memory {

// libssh2_session_init_ex's three functions (LIBSSH2_ALLOC_FUNC and friends).
void* allocate(size_t size, void** abstract);
void release(void* p, void** abstract);
void* resize(void* p, size_t size, void** abstract);

}  // namespace engine::ssh::session_memory
