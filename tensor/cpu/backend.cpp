// The CPU backend: its table of kernels (tensor/backend.h), registered in tensor/backend.cpp.
// Allocation is not here: Storage calls the caching host allocator (tensor/allocator.h) directly.
#include "tensor/cpu/kernels.h"

namespace minipipe::cpu {

constinit const Backend kBackend = {
    .name = "cpu",
    .copy_ = copy_, .fill_ = fill_,
    .add = add, .sub = sub, .mul = mul, .div = div, .maximum = maximum,
    .add_scalar = add_scalar, .mul_scalar = mul_scalar, .pow_scalar = pow_scalar,
    .neg = neg, .exp = exp, .log = log, .sqrt = sqrt, .abs = abs, .tanh = tanh, .sigmoid = sigmoid,
    .relu = relu, .gelu = gelu,
    .eq = eq, .ne = ne, .lt = lt, .le = le, .gt = gt, .ge = ge, .where = where,
    .add_ = add_, .mul_scalar_ = mul_scalar_,
    .relu_backward = relu_backward, .gelu_backward = gelu_backward, .tanh_backward = tanh_backward,
    .sigmoid_backward = sigmoid_backward,
    .sum = sum, .max = max,
    .softmax = softmax, .log_softmax = log_softmax, .softmax_backward = softmax_backward,
    .log_softmax_backward = log_softmax_backward, .cross_entropy = cross_entropy,
    .cross_entropy_backward = cross_entropy_backward,
    .matmul = matmul, .addmm_ = addmm_,
    .index_select = index_select, .index_add = index_add, .one_hot = one_hot,
    .dropout_mask = dropout_mask,
    .layernorm = layernorm, .layernorm_backward = layernorm_backward,
    .embedding = embedding, .embedding_backward = embedding_backward,
    .causal_softmax = causal_softmax, .causal_softmax_backward = causal_softmax_backward,
    .attention_forward = attention_forward, .attention_backward = attention_backward,
    .adamw_step_ = adamw_step_,
};

}  // namespace minipipe::cpu
