// Memory the kernel may back with transparent huge pages (2 MiB each). Where a process keeps
// tens of megabytes for the whole run (a fleet.each's per-host records at 100,000 hosts), every
// 4 KiB page otherwise costs a fault on first write, 10-13 us on a virtual machine (bench/scheduler
// prints this machine's figure): one fault per 2 MiB instead. Only advice: with huge pages off, it
// is ordinary memory.
#pragma once
#include <cstddef>
#include <new>
#include <vector>

namespace engine {

// `bytes` rounded up to whole huge pages, aligned to one; nullptr when the system has none left.
void* map_huge(size_t bytes);
void unmap_huge(void* p, size_t bytes);

// Large arrays through map_huge, small ones through operator new (a huge page each would waste it).
void* huge_or_new(size_t bytes);
void huge_or_delete(void* p, size_t bytes);

// Blocks carved in turn from 2 MiB chunks of such memory, for allocators that keep their own free
// lists (the Lua heap's, libssh2's): nothing goes back to the system before the arena ends. A
// chunk's rest too small for a request stays unused.
class HugeArena {
 public:
  static constexpr size_t kChunk = size_t{2} << 20;
  HugeArena() = default;
  ~HugeArena();
  HugeArena(const HugeArena&) = delete;
  HugeArena& operator=(const HugeArena&) = delete;
  // bytes <= kChunk; nullptr when memory runs out.
  void* carve(size_t bytes);
  size_t bytes_mapped() const { return chunks_.size() * kChunk; }

 private:
  char* next_ = nullptr;
  char* end_ = nullptr;
  std::vector<void*> chunks_;
};

template <class T>
struct HugeAllocator {
  using value_type = T;
  HugeAllocator() = default;
  template <class U>
  HugeAllocator(const HugeAllocator<U>&) {}
  T* allocate(size_t n) {
    if (void* p = huge_or_new(n * sizeof(T))) return static_cast<T*>(p);
    throw std::bad_alloc();
  }
  void deallocate(T* p, size_t n) { huge_or_delete(p, n * sizeof(T)); }
  friend bool operator==(const HugeAllocator&, const HugeAllocator&) { return true; }
};

}  // namespace engine
