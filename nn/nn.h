// Everything nn/ offers, in one include: modules, layers, optimizers, data, checkpoints.
#pragma once

#include "nn/activation.h"
#include "nn/checkpoint.h"
#include "nn/data_loader.h"
#include "nn/idx.h"
#include "nn/linear.h"
#include "nn/module.h"
#include "nn/optim.h"
#include "nn/sequential.h"
