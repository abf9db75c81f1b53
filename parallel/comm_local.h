// The `local` communicator: every rank is a thread of this process — the default, no launcher
// needed, one debugger sees every rank. A message is copied when sent (the receiver never shares
// memory with the sender) into a mailbox per (source, destination, tag); collectives meet at a
// barrier and each rank reduces its own slice of the elements. Every wait polls a shared abort
// flag, so an error on one rank stops all of them instead of hanging.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "parallel/communicator.h"
#include "tensor/storage.h"

namespace minipipe::parallel {

// A world of `size` ranks: one communicator per rank, each to be used on its own thread. Messages
// to rank r are allocated on accounts[r] (empty: the allocating thread's account), so a rank's
// memory account holds what it received.
std::vector<std::unique_ptr<Communicator>> make_local_world(int size,
                                                            std::vector<std::shared_ptr<MemoryAccount>> accounts = {});

// Stops every rank of `comm`'s world: their waits (and any later ones) throw Aborted with `reason`.
// `comm` must be a local communicator.
void abort_local_world(Communicator& comm, const std::string& reason);

}  // namespace minipipe::parallel
