// The memory behind a Lua state. A run's Lua heap is many small blocks (a host's name, its record
// in the results, a task's closure and table: mostly 16-128 bytes), and at fleet scale most of it is
// kept to the end. Served by glibc's malloc, each 4 KiB page of it costs a page fault on first
// write, which on a virtual machine is 10-13 us (bench/scheduler prints this machine's figure):
// ~1 us a host at 100,000 hosts. SmallPool carves small blocks from 2 MiB chunks of huge-page
// memory (engine/core/huge_pages.hpp: one fault per chunk where the kernel allows it), keeps a
// free list per 16-byte size class, and hands larger blocks to malloc. Nothing goes back to the
// system before the pool itself ends (after lua_close): a run's Lua heap lives as long as the run.
// Not thread-safe: one pool per Lua state, used on its thread.
#pragma once
#include <array>
#include <cstddef>

#include "engine/core/huge_pages.hpp"

namespace engine {

class SmallPool {
 public:
  static constexpr size_t kGrain = 16;     // every block is aligned to it (Lua needs 8 or 16)
  static constexpr size_t kMaxSmall = 512; // larger blocks come from malloc
  static constexpr size_t kChunk = HugeArena::kChunk;

  // The three are lua_Alloc's cases; `size` is always what the block was asked for with (Lua
  // passes it back), so blocks carry no header. nullptr when memory runs out.
  void* allocate(size_t size);
  void release(void* p, size_t size);
  void* resize(void* p, size_t old_size, size_t new_size);

  // lua_Alloc itself: ud is the pool.
  static void* lua_alloc(void* ud, void* ptr, size_t osize, size_t nsize);

  size_t chunk_bytes() const { return arena_.bytes_mapped(); }

 private:
  static size_t class_of(size_t size) { return (size + kGrain - 1) / kGrain; }

  std::array<void*, kMaxSmall / kGrain + 1> free_{};  // per class: a list linked through the blocks
  HugeArena arena_;
};

}  // namespace engine
