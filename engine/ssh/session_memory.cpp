#include "engine/ssh/session_memory.hpp"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

#include "engine/core/huge_pages.hpp"

namespace engine::ssh::session_memory {

namespace {

constexpr size_t kHeader = 16;             // keeps the 16-byte alignment malloc gives
constexpr size_t kPooledFrom = 16 << 10;   // the session structure, packet buffers
constexpr size_t kPooledUpTo = 512 << 10;  // larger ones (rare) stay with malloc
constexpr size_t kPage = 4096;

struct Header {
  size_t size;    // what was asked for
  size_t pooled;  // 1: from the chunks (its slot is size rounded up to kPage), 0: from malloc
};

// Pooled slots by their size, reused by the next block of the same slot size (the arena's chunks
// last as long as the process).
struct Pool {
  std::map<size_t, std::vector<char*>> free;
  HugeArena arena;

  char* take(size_t slot) {
    if (auto it = free.find(slot); it != free.end() && !it->second.empty()) {
      char* p = it->second.back();
      it->second.pop_back();
      return p;
    }
    return static_cast<char*>(arena.carve(slot));
  }
};

Pool& pool() {
  static Pool* p = new Pool;  // never destroyed: a session freed during exit still finds it
  return *p;
}

size_t slot_of(size_t size) { return (size + kHeader + kPage - 1) & ~(kPage - 1); }

Header* header_of(void* p) { return reinterpret_cast<Header*>(static_cast<char*>(p) - kHeader); }

}  // namespace

void* allocate(size_t size, void**) {
  bool pooled = size >= kPooledFrom && size <= kPooledUpTo;
  char* base = pooled ? pool().take(slot_of(size)) : static_cast<char*>(std::malloc(size + kHeader));
  if (!base) return nullptr;
  *reinterpret_cast<Header*>(base) = {size, pooled ? size_t{1} : size_t{0}};
  return base + kHeader;
}

void release(void* p, void**) {
  if (!p) return;
  Header* h = header_of(p);
  if (h->pooled) pool().free[slot_of(h->size)].push_back(reinterpret_cast<char*>(h));
  else std::free(h);
}

void* resize(void* p, size_t size, void** abstract) {
  if (!p) return allocate(size, abstract);
  Header* h = header_of(p);
  bool pooled = size >= kPooledFrom && size <= kPooledUpTo;
  if (!h->pooled && !pooled) {
    auto* base = static_cast<Header*>(std::realloc(h, size + kHeader));
    if (!base) return nullptr;
    base->size = size;
    return reinterpret_cast<char*>(base) + kHeader;
  }
  if (h->pooled && pooled && slot_of(size) == slot_of(h->size)) {
    h->size = size;
    return p;
  }
  void* q = allocate(size, abstract);
  if (!q) return nullptr;  // p stays valid
  std::memcpy(q, p, h->size < size ? h->size : size);
  release(p, abstract);
  return q;
}

}  // namespace engine::ssh::session_memory
