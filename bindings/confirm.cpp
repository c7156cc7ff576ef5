// confirm(message): asks the operator on a terminal; --yes answers yes; with neither, the run
// stops and says how to answer. Reading the answer waits like any other call: hosts in flight go on.
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/read_until.hpp>
#include <cstdio>

#include "bindings/vm.hpp"
#include "engine/log/log.hpp"

namespace engine::lua {

namespace {

int l_confirm(lua_State* L) {
  std::string msg = luaL_checkstring(L, 1);
  Vm& vm = vm_of(L);
  std::string host = current_task(L) ? current_task(L)->host : "";
  if (vm.assume_yes) {
    log::emit(log::Level::info, host, "confirmed by --yes", {{"question", msg}});
    lua_pushboolean(L, 1);
    return 1;
  }
  if (!isatty(STDIN_FILENO))
    return luaL_error(L, "confirm: \"%s\" needs an answer, but there is no terminal to ask on; run with --yes to answer yes",
                      msg.c_str());
  {
    Op op = begin(L, "confirm");
    std::fprintf(stdout, "%s%s%s [y/N] ", host.empty() ? "" : "[", host.empty() ? "" : (host + "] ").c_str(), msg.c_str());
    std::fflush(stdout);
    auto in = std::make_shared<asio::posix::stream_descriptor>(vm.io, ::dup(STDIN_FILENO));
    auto buf = std::make_shared<std::string>();
    asio::async_read_until(*in, asio::dynamic_buffer(*buf), '\n', [op, in, buf, msg, host](const boost::system::error_code& ec, size_t n) {
      std::string answer = ec ? "" : buf->substr(0, n);
      while (!answer.empty() && (answer.back() == '\n' || answer.back() == '\r' || answer.back() == ' ')) answer.pop_back();
      bool yes = answer == "y" || answer == "Y" || answer == "yes" || answer == "YES" || answer == "Yes";
      log::emit(log::Level::info, host, yes ? "confirmed" : "not confirmed", {{"question", msg}, {"answer", answer}});
      complete(op, [yes](lua_State* co) {
        lua_pushboolean(co, yes);
        return 1;
      });
    });
    arm(op, [in] {
      boost::system::error_code ignore;
      in->cancel(ignore);
    });
  }
  return suspend(L);
}

}  // namespace

void open_confirm(lua_State* L) {
  push_fn(L, l_confirm);
  lua_setglobal(L, "confirm");
}

}  // namespace engine::lua
