// The `local` communicator: every rank is a thread of this process — the default, no launcher
// needed, one debugger sees every rank. Sends and receives meet in a mailbox per (source,
// destination, tag); the receiver copies the message (it never shares memory with the sender) and
// then releases the sender, like MPI's rendezvous protocol. Collectives meet at a barrier and each
// rank reduces its own slice of the elements. Every wait checks a shared abort flag, so an error on
// one rank stops all of them instead of hanging.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "parallel/communicator.h"

namespace minipipe::parallel {

// A world of `size` ranks: one communicator per rank, each to be used on its own thread (the
// receiver's copy of a message is allocated on its thread, so on its memory account).
std::vector<std::unique_ptr<Communicator>> make_local_world(int size);

// Stops every rank of `comm`'s world: their waits (and any later ones) throw Aborted with `reason`.
// `comm` must be a local communicator.
void abort_local_world(Communicator& comm, const std::string& reason);

}  // namespace minipipe::parallel
