// The engine's own allocators: the Lua heap's (engine/core/small_pool.hpp) and the huge-page
// arrays (engine/core/huge_pages.hpp). Every block keeps
// what was written to it through allocate / grow / shrink / free sequences, no two live blocks
// overlap, and freed blocks are reused.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <vector>

#include "engine/core/huge_pages.hpp"
#include "engine/core/small_pool.hpp"

using engine::HugeAllocator;
using engine::SmallPool;

namespace {
struct Block {
  size_t size;
  unsigned char fill;
};

bool holds(const void* p, const Block& b) {
  auto* c = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < b.size; ++i)
    if (c[i] != static_cast<unsigned char>(b.fill + i)) return false;
  return true;
}

void fill(void* p, const Block& b) {
  auto* c = static_cast<unsigned char*>(p);
  for (size_t i = 0; i < b.size; ++i) c[i] = static_cast<unsigned char>(b.fill + i);
}
}  // namespace

TEST_CASE("small pool: Lua's allocation sequence keeps every block's bytes, no two blocks overlap") {
  SmallPool pool;
  std::mt19937 rng(7);
  std::map<uintptr_t, Block> live;  // by address: neighbours are checked for overlap
  auto sizes = std::uniform_int_distribution<size_t>(0, 700);  // across the 512-byte border
  for (int step = 0; step < 60000; ++step) {
    int what = static_cast<int>(rng() % 10);
    if (what < 5 || live.empty()) {
      size_t n = sizes(rng) + 1;
      void* p = SmallPool::lua_alloc(&pool, nullptr, 5 /* LUA_TTABLE: a kind, not a size */, n);
      REQUIRE(p);
      REQUIRE(reinterpret_cast<uintptr_t>(p) % SmallPool::kGrain == 0);
      Block b{n, static_cast<unsigned char>(rng())};
      fill(p, b);
      live[reinterpret_cast<uintptr_t>(p)] = b;
    } else {
      auto it = live.begin();
      std::advance(it, rng() % live.size());
      void* p = reinterpret_cast<void*>(it->first);
      Block b = it->second;
      REQUIRE(holds(p, b));
      live.erase(it);
      if (what < 8) {  // grow or shrink: the common prefix survives
        size_t n = sizes(rng) + 1;
        void* q = SmallPool::lua_alloc(&pool, p, b.size, n);
        REQUIRE(q);
        Block kept{std::min(b.size, n), b.fill};
        REQUIRE(holds(q, kept));
        Block nb{n, static_cast<unsigned char>(rng())};
        fill(q, nb);
        live[reinterpret_cast<uintptr_t>(q)] = nb;
      } else {
        REQUIRE(SmallPool::lua_alloc(&pool, p, b.size, 0) == nullptr);
      }
    }
  }
  uintptr_t end = 0;
  for (const auto& [at, b] : live) {
    REQUIRE(at >= end);  // sorted by address: each starts after the last one ended
    REQUIRE(holds(reinterpret_cast<void*>(at), b));
    end = at + b.size;
  }
  for (const auto& [at, b] : live) SmallPool::lua_alloc(&pool, reinterpret_cast<void*>(at), b.size, 0);
  CHECK(pool.chunk_bytes() % SmallPool::kChunk == 0);
}

TEST_CASE("small pool: a freed block is the next one of its size class; chunks come 2 MiB at a time") {
  SmallPool pool;
  void* a = pool.allocate(40);
  void* b = pool.allocate(48);  // the same 48-byte class
  CHECK(pool.chunk_bytes() == SmallPool::kChunk);
  pool.release(a, 40);
  CHECK(pool.allocate(33) == a);
  CHECK(pool.allocate(48) != b);
  // Growing within the class keeps the block where it is.
  CHECK(pool.resize(b, 48, 37) == b);
  // 2 MiB of 512-byte blocks needs a second chunk.
  for (size_t i = 0; i < SmallPool::kChunk / 512; ++i) REQUIRE(pool.allocate(512));
  CHECK(pool.chunk_bytes() == 2 * SmallPool::kChunk);
  // Lua's "free a null pointer" is a no-op.
  CHECK(SmallPool::lua_alloc(&pool, nullptr, 3, 0) == nullptr);
}

TEST_CASE("huge-page arrays: large ones aligned to 2 MiB, contents kept as they grow") {
  std::vector<uint64_t, HugeAllocator<uint64_t>> v;
  for (uint64_t i = 0; i < 400000; ++i) v.push_back(i * 3);  // 3.2 MB: crosses into map_huge
  CHECK(reinterpret_cast<uintptr_t>(v.data()) % (size_t{2} << 20) == 0);
  bool intact = true;
  for (uint64_t i = 0; i < v.size(); ++i) intact = intact && v[i] == i * 3;
  CHECK(intact);
  std::vector<uint64_t, HugeAllocator<uint64_t>> small(10, 9);  // from operator new
  CHECK(small[9] == 9);
  auto moved = std::move(v);
  CHECK(moved[399999] == 399999 * 3);
}
