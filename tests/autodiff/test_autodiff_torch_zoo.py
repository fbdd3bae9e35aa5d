"""Gradients of exported PyTorch classifiers against torch.autograd.

A zoo of small (32x32) architectures in plain torch (torchvision is not available), each exported
with the TorchScript exporter at opsets 13 and 17 and with the dynamo exporter. Every model also
returns one intermediate activation as a second output so that its ONNX tensor name is known;
the gradient of ``sum(seed * logits)`` with respect to the input and to that activation must
match torch.autograd: max |diff| <= 1e-4 * max |grad|.
"""

from __future__ import annotations

import io
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from _autodiff_helpers import run_grads  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TOL = 1e-4


def _bn(c):
    bn = nn.BatchNorm2d(c)
    with torch.no_grad():  # non-trivial running statistics (eval mode uses them)
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.2, 0.2)
    return bn


def conv_bn(cin, cout, k=3, s=1, groups=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), _bn(cout))


class Basic(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.a, self.b = conv_bn(cin, cout, 3, stride), conv_bn(cout, cout)
        self.down = conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x):
        return F.relu(self.b(F.relu(self.a(x))) + self.down(x))


class Bottleneck(nn.Module):
    def __init__(self, cin, mid, cout, stride):
        super().__init__()
        self.a, self.b, self.c = conv_bn(cin, mid, 1), conv_bn(mid, mid, 3, stride), conv_bn(mid, cout, 1)
        self.down = conv_bn(cin, cout, 1, stride)

    def forward(self, x):
        return F.relu(self.c(F.relu(self.b(F.relu(self.a(x))))) + self.down(x))


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv_bn(3, 8, 3, 1)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = Basic(8, 8, 1)
        self.layer2 = Bottleneck(8, 8, 16, 2)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        f = self.layer1(self.pool(F.relu(self.stem(x))))
        y = self.layer2(f)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1)), f


class VGG(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                                      nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.5), nn.Linear(16 * 8 * 8, 32),
                                  nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 10))

    def forward(self, x):
        f = self.features(x)
        return self.head(f), f


class SE(nn.Module):
    def __init__(self, c, r=4):
        super().__init__()
        self.a, self.b = nn.Conv2d(c, c // r, 1), nn.Conv2d(c // r, c, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * F.hardsigmoid(self.b(F.relu(self.a(s))))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, act, se):
        super().__init__()
        mid = cin * 3
        self.expand, self.dw = conv_bn(cin, mid, 1), conv_bn(mid, mid, 3, stride, groups=mid)
        self.se = SE(mid) if se else nn.Identity()
        self.project = conv_bn(mid, cout, 1)
        self.act, self.res = act, stride == 1 and cin == cout

    def forward(self, x):
        y = self.project(self.se(self.act(self.dw(self.act(self.expand(x))))))
        return x + y if self.res else y


class MobileNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv_bn(3, 8, 3, 2)
        self.v2 = InvertedResidual(8, 8, 1, nn.ReLU6(), False)
        self.v3 = InvertedResidual(8, 16, 2, nn.Hardswish(), True)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        f = self.v2(F.hardswish(self.stem(x)))
        y = self.v3(f)
        return self.fc(y.mean((2, 3))), f


class DenseNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.l1, self.l2 = conv_bn(8, 4), conv_bn(12, 4)
        self.trans = nn.Sequential(_bn(16), nn.ReLU(), nn.Conv2d(16, 8, 1), nn.AvgPool2d(2))
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.stem(x)
        x = torch.cat([x, F.relu(self.l1(x))], 1)
        f = torch.cat([x, F.relu(self.l2(x))], 1)
        y = self.trans(f)
        return self.fc(F.adaptive_avg_pool2d(y, 1).flatten(1)), f


class Inception(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True))
        self.b1 = nn.Conv2d(8, 4, 1)
        self.b2 = nn.Sequential(nn.Conv2d(8, 4, 1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
        self.b3 = nn.Sequential(nn.Conv2d(8, 2, 1), nn.ReLU(), nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(),
                                nn.Conv2d(4, 4, 3, padding=1))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(8, 4, 1))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        s = self.stem(x)
        f = F.relu(torch.cat([self.b1(s), self.b2(s), self.b3(s), self.b4(s)], 1))
        return self.fc(F.adaptive_avg_pool2d(f, 1).flatten(1)), s


class Fire(nn.Module):
    def __init__(self, cin, s, e):
        super().__init__()
        self.s, self.e1, self.e3 = nn.Conv2d(cin, s, 1), nn.Conv2d(s, e, 1), nn.Conv2d(s, e, 3, padding=1)

    def forward(self, x):
        x = F.relu(self.s(x))
        return torch.cat([F.relu(self.e1(x)), F.relu(self.e3(x))], 1)


class SqueezeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True))
        self.fire1, self.fire2 = Fire(8, 4, 8), Fire(16, 4, 8)
        self.head = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(16, 10, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))

    def forward(self, x):
        f = self.fire1(self.stem(x))
        return torch.flatten(self.head(self.fire2(f)), 1), f


class _LRNFunction(torch.autograd.Function):
    """torch's LocalResponseNorm, exported as the ONNX LRN op (torch's own export decomposes it
    into pooling and an If node)."""

    @staticmethod
    def forward(ctx, x, size, alpha, beta, k):
        with torch.enable_grad():
            xd = x.detach().requires_grad_(True)
            y = F.local_response_norm(xd, size, alpha, beta, k)
        ctx.save_for_backward(xd, y)
        return y.detach()

    @staticmethod
    def backward(ctx, g):
        xd, y = ctx.saved_tensors
        return torch.autograd.grad(y, xd, g)[0], None, None, None, None

    @staticmethod
    def symbolic(g, x, size, alpha, beta, k):
        return g.op("LRN", x, size_i=size, alpha_f=alpha, beta_f=beta, bias_f=k)


class LRN(nn.Module):
    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        self.args = (size, alpha, beta, k)

    def forward(self, x):
        if torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export() and _DYNAMO[0]:
            return F.local_response_norm(x, *self.args)
        return _LRNFunction.apply(x, *self.args)


_DYNAMO = [False]


class AlexNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Sequential(nn.Conv2d(3, 8, 5, 2, 2), nn.ReLU(), LRN(3, 1e-2, 0.75, 2.0),
                                nn.MaxPool2d(3, 2))
        self.c2 = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), LRN(5, 1e-2),
                                nn.MaxPool2d(3, 2))
        self.fc = nn.Sequential(nn.Dropout(), nn.Linear(16 * 3 * 3, 10))

    def forward(self, x):
        f = self.c1(x)
        return self.fc(torch.flatten(self.c2(f), 1)), f


class UpsampleNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(3, 8, 3, 2, 1), nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 4, 3, 2, 1)
        self.fc = nn.Linear(4 * 16 * 16, 10)

    def forward(self, x):
        f = torch.tanh(self.a(x))
        y = torch.relu(self.b(F.interpolate(f, scale_factor=2, mode="nearest")))
        y = F.interpolate(y, size=(24, 24), mode="bilinear", align_corners=False)
        y = F.interpolate(torch.sigmoid(self.c(y)), scale_factor=(4 / 3, 4 / 3), mode="bilinear",
                          align_corners=True)
        return self.fc(y.flatten(1)), f


ZOO = {"resnet": ResNet, "vgg": VGG, "mobilenet": MobileNet, "densenet": DenseNet, "inception": Inception,
       "squeezenet": SqueezeNet, "alexnet": AlexNet, "upsample": UpsampleNet}
EXPORTS = ["torchscript13", "torchscript17", "dynamo"]


def export(net, x, how: str) -> onnx.ModelProto:
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if how == "dynamo":
            _DYNAMO[0] = True
            try:
                prog = torch.onnx.export(net, (x,), dynamo=True, input_names=["input"],
                                         output_names=["logits", "feature"], verbose=False)
            finally:
                _DYNAMO[0] = False
            return prog.model_proto
            prog = torch.onnx.export(net, (x,), dynamo=True, input_names=["input"],
                                     output_names=["logits", "feature"], verbose=False)
            return prog.model_proto
        torch.onnx.export(net, (x,), f, opset_version=int(how[-2:]), input_names=["input"],
                          output_names=["logits", "feature"], dynamo=False,
                          dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}, "feature": {0: "N"}})
    return onnx.load_from_string(f.getvalue())


def torch_grads(net, x, seed):
    xx = x.clone().requires_grad_(True)
    logits, feat = net(xx)
    gx, gf = torch.autograd.grad((logits * seed).sum(), [xx, feat])
    return logits.detach().numpy(), gx.numpy(), gf.numpy()


def assert_close(got, ref, what):
    err = np.abs(got - ref).max()
    assert got.shape == ref.shape, what
    assert err <= TOL * np.abs(ref).max(), f"{what}: max|diff| {err:.3g} vs max|grad| {np.abs(ref).max():.3g}"


@pytest.mark.parametrize("how", EXPORTS)
@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_matches_torch_autograd(name, how):
    torch.manual_seed(0)
    net = ZOO[name]().eval()
    x = torch.randn(2, 3, 32, 32)
    seed = torch.zeros(2, 10)
    seed[0, 3], seed[1, 7] = 1.0, 1.0  # a chosen logit per image
    proto = export(net, x, how)
    _, gx, gf = torch_grads(net, x, seed)
    grads, _ = run_grads(proto, "logits", ["input", "feature"], {"input": x.numpy()}, seed.numpy())
    assert_close(grads["input"], gx, f"{name}/{how} d/d input")
    assert_close(grads["feature"], gf, f"{name}/{how} d/d feature")


class _SharedMaskReLU6(torch.autograd.Function):
    """ReLU6 whose backward uses a given mask (ONNX Runtime's 0 < y < 6) instead of torch's own."""

    @staticmethod
    def forward(ctx, x, y, mask):
        ctx.save_for_backward(mask)
        return y.clone()

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved_tensors
        return g * mask, None, None


@pytest.mark.parametrize("cpu", [False, True], ids=["portable", "cpu_forms"])
def test_efficientnet_lite0_matches_torch(cpu):
    """The bundled EfficientNet-Lite0 (TorchScript export, opset 17) vs its torch original on a real
    photo, wrt the input and the last ReLU6 output (the CAM layer); ``cpu_forms`` builds the graph
    with ``gradient_model(cpu=True)`` (strided depthwise gradients through MaxUnpool).

    In float32, ORT and torch round the pre-activations differently, so a handful of the ~1M ReLU6
    inputs within ~1e-6 of 0 or 6 land on different sides of the kink; each such flip moves the
    gradient by a discrete amount (~1e-3 relative here). ORT has no float64 Conv, so instead the
    torch backward reuses ORT's ReLU6 masks (forward decisions only; torch still computes every
    backward product itself), and the test checks that few masks differ at all.
    """
    path = ROOT / "onnxviz" / "data" / "models" / "efficientnet_lite0.onnx"
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from models.build_efficientnet import chelsea_pixels, normalize, torch_model

    from _autodiff_helpers import session

    net = torch_model()
    proto = onnx.load(str(path))
    clips = [n.output[0] for n in proto.graph.node if n.op_type == "Clip"]
    layer = clips[-1]
    x = torch.from_numpy(normalize(chelsea_pixels()))
    seed = torch.zeros(1, 1000)
    seed[0, 281] = 1.0  # tabby cat
    grads, exposed = run_grads(proto, "logits", ["input", layer], {"input": x.numpy()}, seed.numpy(),
                               expose=clips, cpu=cpu)
    acts, flips, total = [], [0], [0]

    def hook(module, inputs, out):
        y_ort = torch.from_numpy(exposed[clips[len(acts)]])
        mask = ((y_ort > 0) & (y_ort < 6)).float()
        flips[0] += int((mask != ((out > 0) & (out < 6)).float()).sum())
        total[0] += mask.numel()
        out = _SharedMaskReLU6.apply(inputs[0], out.detach(), mask)
        acts.append(out)
        return out

    hooks = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.ReLU6)]
    try:
        xx = x.clone().requires_grad_(True)
        logits = net(xx)
        gx, gf = torch.autograd.grad((logits * seed).sum(), [xx, acts[-1]])
    finally:
        for h in hooks:
            h.remove()
    assert len(acts) == len(clips)
    assert flips[0] <= 1e-4 * total[0], f"{flips[0]} of {total[0]} ReLU6 masks differ"
    assert_close(grads["input"], gx.numpy(), "efficientnet d/d input")
    assert_close(grads[layer], gf.numpy(), "efficientnet d/d last activation")
