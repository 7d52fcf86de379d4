// The global functions of a chat template: Jinja2's range, dict and namespace, and
// transformers' raise_exception and strftime_now.
#pragma once

#include "chat/evaluator.h"

namespace flow2::chat {

void add_globals(Scope& scope);

}  // namespace flow2::chat
