# Writes a .cpp holding the text of a JSON Schema file, so the binary enforces exactly the schema that ships
# in schema/ (run by the custom command in CMakeLists.txt whenever the file changes).
#   cmake -DINPUT=<schema.json> -DOUTPUT=<file.cpp> -DFUNCTION=<name> -P embed_schema.cmake
file(READ "${INPUT}" content)
string(FIND "${content}" ")netprobe_schema\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${INPUT} contains the raw-string delimiter used to embed it")
endif()
set(text "// Generated from ${INPUT} by src/config/embed_schema.cmake. Do not edit.\n")
string(APPEND text "#include <string_view>\n\nnamespace netprobe {\n\n")
string(APPEND text "std::string_view ${FUNCTION}() {\n  static constexpr std::string_view kText = R\"netprobe_schema(")
string(APPEND text "${content}")
string(APPEND text ")netprobe_schema\";\n  return kText;\n}\n\n}  // namespace netprobe\n")
file(WRITE "${OUTPUT}.tmp" "${text}")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
