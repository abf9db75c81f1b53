// Everything nn/ offers, in one include: modules, layers, optimizers.
#pragma once

#include "nn/activation.h"
#include "nn/linear.h"
#include "nn/module.h"
#include "nn/optim.h"
#include "nn/sequential.h"
