#include "engine/core/small_pool.hpp"

#include <cstdlib>
#include <cstring>

namespace engine {

void* SmallPool::allocate(size_t size) {
  if (size > kMaxSmall) return std::malloc(size);
  size_t cls = class_of(size == 0 ? 1 : size);
  if (void* p = free_[cls]) {
    free_[cls] = *static_cast<void**>(p);
    return p;
  }
  return arena_.carve(cls * kGrain);
}

void SmallPool::release(void* p, size_t size) {
  if (!p) return;
  if (size > kMaxSmall) return std::free(p);
  size_t cls = class_of(size == 0 ? 1 : size);
  *static_cast<void**>(p) = free_[cls];
  free_[cls] = p;
}

void* SmallPool::resize(void* p, size_t old_size, size_t new_size) {
  if (old_size > kMaxSmall && new_size > kMaxSmall) return std::realloc(p, new_size);
  if (old_size <= kMaxSmall && new_size <= kMaxSmall &&
      class_of(old_size == 0 ? 1 : old_size) == class_of(new_size == 0 ? 1 : new_size))
    return p;
  void* q = allocate(new_size);
  if (!q) return nullptr;  // p stays valid, as Lua expects of a failed reallocation
  std::memcpy(q, p, old_size < new_size ? old_size : new_size);
  release(p, old_size);
  return q;
}

void* SmallPool::lua_alloc(void* ud, void* ptr, size_t osize, size_t nsize) {
  auto* pool = static_cast<SmallPool*>(ud);
  if (nsize == 0) {
    pool->release(ptr, osize);
    return nullptr;
  }
  // A null ptr's osize is the kind of object Lua is making, not a size.
  if (!ptr) return pool->allocate(nsize);
  return pool->resize(ptr, osize, nsize);
}

}  // namespace engine
