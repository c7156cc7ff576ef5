#include "engine/core/huge_pages.hpp"

#include <sys/mman.h>

#include <cstdint>

namespace engine {

namespace {
constexpr size_t kHuge = size_t{2} << 20;
constexpr size_t kHugeFrom = size_t{1} << 20;  // below: operator new (malloc)
size_t rounded(size_t bytes) { return (bytes + kHuge - 1) & ~(kHuge - 1); }
}  // namespace

void* map_huge(size_t bytes) {
  size_t size = rounded(bytes);
  // Map a huge page more than needed and give back the unaligned ends.
  void* raw = mmap(nullptr, size + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  auto start = reinterpret_cast<uintptr_t>(raw);
  uintptr_t aligned = (start + kHuge - 1) & ~(uintptr_t{kHuge} - 1);
  if (aligned > start) munmap(raw, aligned - start);
  uintptr_t tail = aligned + size, raw_end = start + size + kHuge;
  if (raw_end > tail) munmap(reinterpret_cast<void*>(tail), raw_end - tail);
  madvise(reinterpret_cast<void*>(aligned), size, MADV_HUGEPAGE);
  return reinterpret_cast<void*>(aligned);
}

void unmap_huge(void* p, size_t bytes) {
  if (p) munmap(p, rounded(bytes));
}

HugeArena::~HugeArena() {
  for (void* c : chunks_) unmap_huge(c, kChunk);
}

// The first chunk in 4 KiB pages: most runs touch a few hundred KiB of it, and a huge page is
// zeroed whole on its first write (0.25 ms on this machine, several ms where the hypervisor must
// back it first), more than the small pages' faults for what a short run uses. Later chunks are
// huge pages, where a run keeps enough to fill them.
static void* map_small(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  madvise(p, bytes, MADV_NOHUGEPAGE);
  return p;
}

void* HugeArena::carve(size_t bytes) {
  if (static_cast<size_t>(end_ - next_) < bytes) {
    void* c = chunks_.empty() ? map_small(kChunk) : map_huge(kChunk);
    if (!c) return nullptr;
    chunks_.push_back(c);
    next_ = static_cast<char*>(c);
    end_ = next_ + kChunk;
  }
  void* p = next_;
  next_ += bytes;
  return p;
}

void* huge_or_new(size_t bytes) {
  if (bytes < kHugeFrom) return ::operator new(bytes, std::nothrow);
  return map_huge(bytes);
}

void huge_or_delete(void* p, size_t bytes) {
  if (bytes < kHugeFrom) return ::operator delete(p);
  unmap_huge(p, bytes);
}

}  // namespace engine
