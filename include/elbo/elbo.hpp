#pragma once
// The whole CPU library of elbo. Layers, bottom-up: tensor/, kernels/cpu/, autograd/, ops/, io/,
// nn/, optim/, models/, train/, data/, metrics/.

#include "elbo/error.hpp"
#include "elbo/reduction.hpp"
#include "elbo/threads.hpp"
#include "elbo/tensor/generator.hpp"
#include "elbo/tensor/shape.hpp"
#include "elbo/tensor/tensor.hpp"

#include "elbo/autograd/backward.hpp"
#include "elbo/autograd/dot.hpp"
#include "elbo/autograd/gradcheck.hpp"
#include "elbo/autograd/var.hpp"

#include "elbo/ops/activations.hpp"
#include "elbo/ops/arithmetic.hpp"
#include "elbo/ops/conv.hpp"
#include "elbo/ops/latent.hpp"
#include "elbo/ops/linear.hpp"
#include "elbo/ops/losses.hpp"
#include "elbo/ops/reduce.hpp"
#include "elbo/ops/shape.hpp"

#include "elbo/io/file.hpp"
#include "elbo/io/image.hpp"
#include "elbo/io/safetensors.hpp"

#include "elbo/nn/layers.hpp"
#include "elbo/nn/module.hpp"
#include "elbo/optim/optimizers.hpp"

#include "elbo/models/checkpoint.hpp"
#include "elbo/models/config.hpp"
#include "elbo/models/factor_vae.hpp"
#include "elbo/models/gradcheck.hpp"
#include "elbo/models/vae.hpp"

#include "elbo/train/health.hpp"
#include "elbo/train/log.hpp"
#include "elbo/train/shadow.hpp"
#include "elbo/train/step.hpp"

#include "elbo/data/dataset.hpp"
#include "elbo/data/dsprites.hpp"
#include "elbo/data/idx.hpp"
#include "elbo/data/images.hpp"
#include "elbo/data/loader.hpp"

#include "elbo/metrics/disentanglement.hpp"
#include "elbo/metrics/likelihood.hpp"
