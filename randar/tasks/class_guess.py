"""Which class a picture looks like to the model: the class an edit of it should start from.

Why: an edit's class steers every token it generates. The app used to keep whatever the class box held, so the
cat example was inpainted as `face-smiling` (a dark smear). `Studio.guess_class(image)` gives the class, or None
("no class": the model's null class, unconditional) where nothing fits, with how sure it is and why.

How (`LikelihoodGuesser`, the default): the model's own likelihood of the picture's tokens under each candidate
class, teacher-forced, in a few fixed random orders. Only the first `tokens` of each order are scored: the class
decides the first tokens of a random order most (later ones follow from the tokens already there), so many short
orders tell classes apart better than a few whole ones at the same cost (on the shipped model and the eight README
examples, over 20 draws of the orders: 4 orders of 16 tokens ranked the true subgroup first for 4.5 of 8 and among
the first five for 7.3; 2 whole orders, 4 times the cost: 4.2 and 6.1). The picture is squeezed to the model's
square canvas; it is only compared with itself under each class.

Cost: every (class, order) pair is one sequence of 2 x `tokens` slots, so a model with ~1800 classes cannot score
them all (most of a minute on a CPU core). Models with more than `shortlist` classes get a shortlist first from
one forward and backward pass at the mean class embedding: the gradient of the log-likelihood with respect to the
class embedding, dotted with every class's embedding row, is a first-order estimate of each class's score (on
the shipped model the exact winner was within its top 10 for all eight examples). Then the `shortlist` classes and
"no class" are scored exactly: 17 x 4 sequences of 32 slots, 0.5-0.9 s on one busy CPU core for the shipped
model (2.5-3 s for all 98 classes), whatever the number of classes.

No class (the model's null class): where the best class's loss per token is above `chance` times ln(codebook size),
the loss of a blind guess, the model does not know pictures like this one (photos under the emoji model: 1.1-1.2
times it; the emoji examples: 0.3-0.7); where no class predicts the tokens better than the null class; and where
the best class has less than `min_confidence` of the posterior over the scored hypotheses (a uniform prior): a
wrong class steers every generated token, no class only lets the picture's own tokens do so. A model with class
groups (the emoji model: 1806 emoji in 98 subgroups) gets its best class's group instead where the group's
classes together hold `min_confidence` (the cat example: some cat face, which one unsure). On the eight
examples: four right, one wrong, three without a class.

Pluggable: a model may ship its own classifier. `register_guesser(factory)` adds a factory that `guesser_for(dir)`
(called by `Studio.load` with the model's directory) tries first; it returns a `ClassGuesser` for directories it
recognises (e.g. one holding a classifier file) and None otherwise. `studio.class_guesser` may also be set.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

import torch
import torch.nn.functional as F
from PIL import Image

from ..options.checks import derive_seed
from ..io.images import to_tensor
from ..model.transformer import teacher_forcing_slots
from ..ordering.orders import make_orders
from .geometry import resample

if TYPE_CHECKING:
    from .plan import ModelPair

__all__ = ["ClassGuess", "ClassGuesser", "LikelihoodGuesser", "register_guesser", "guesser_for"]


@dataclass(frozen=True)
class ClassGuess:
    """A guessed class. `name` None means no class (the model's null class); a name with `index` None is a class
    group's (a model with groups, e.g. an emoji subgroup, where the group stands out but none of its classes does),
    which the model's class lookup takes like a class: it picks one of the group's classes per picture."""

    index: int | None
    name: str | None
    # 0..1: a class's share of the posterior over the scored hypotheses (uniform prior); for no class, the null
    # class's share, or 1 minus the best class's share when none stands out, or 1 for a picture unlike the model's
    confidence: float
    how: str  # one line for users: what decided it
    candidates: tuple[tuple[int, float], ...] = field(default=())  # (class, loss in nats per token), best first


class ClassGuesser(Protocol):
    """Anything that names the class of an RGB picture for a model pair."""

    def __call__(self, pair: "ModelPair", image: Image.Image) -> ClassGuess: ...


@dataclass
class LikelihoodGuesser:
    """The model's own likelihood of the picture's tokens (see the module docstring)."""

    tokens: int = 16  # scored tokens per order
    orders: int = 4  # random orders averaged
    shortlist: int = 16  # classes scored exactly when the model has more
    chance: float = 0.9  # no class above this fraction of ln(codebook size) per token
    min_confidence: float = 0.5  # no class when the best has less of the posterior
    batch: int = 32  # sequences per forward pass (bounds memory)
    seed: int = 0

    def __call__(self, pair: "ModelPair", image: Image.Image) -> ClassGuess:
        gpt, C = pair.gpt, pair.num_classes
        if C < 1:
            return ClassGuess(None, None, 1.0, "the model has no classes")
        device = pair.device
        size = pair.image_size
        with torch.inference_mode():
            codes = pair.vq.encode(to_tensor(resample(image.convert("RGB"), (size, size)))).reshape(1, -1).to(device)
        G, n = pair.grid, min(self.tokens, pair.grid ** 2)
        orders = make_orders("random", self.orders, G, G, seed=derive_seed(self.seed, "class-guess"))[:, :n].to(device)
        if C > self.shortlist:
            scores = _linear_scores(pair, codes, orders)
            candidates = torch.topk(scores, self.shortlist).indices.tolist()
            scope = f"the {self.shortlist} likeliest of {C} classes (by a first-order estimate)"
        else:
            candidates = list(range(C))
            scope = f"all {C} classes"
        loss = _losses(pair, codes, orders, candidates + [gpt.null_class], self.batch)  # nats per token
        ranked = sorted(zip(candidates, loss[:-1].tolist()), key=lambda t: t[1])
        null = float(loss[-1])
        evidence = -loss * (orders.shape[0] * n)  # log-likelihood of the scored tokens, per hypothesis
        posterior = torch.softmax(evidence, 0)
        best, best_loss = ranked[0]
        chance = math.log(pair.vq.config.codebook_size)
        if best_loss > self.chance * chance:
            return ClassGuess(None, None, 1.0,
                              f"the model does not know pictures like this: {best_loss:.2f} nats per token under its "
                              f"best class, a blind guess costs {chance:.2f}", tuple(ranked))
        if best_loss >= null:
            return ClassGuess(None, None, float(posterior[-1]),
                              f"no class predicts the picture better than none ({scope} scored)", tuple(ranked))
        confidence = float(posterior[candidates.index(best)])
        groups = pair.class_groups
        if confidence < self.min_confidence and groups and groups[best]:
            # no single class stands out, but its group may (the cat example: a cat face, which one unsure)
            group = groups[best]
            share = float(sum(posterior[i] for i, c in enumerate(candidates) if groups[c] == group))
            if share >= self.min_confidence:
                return ClassGuess(None, group, share,
                                  f"the likeliest classes are of the group {group} ({share:.0%} of the model's belief; "
                                  f"its likeliest, {pair.class_names[best]}, has {confidence:.0%}; {scope} scored)",
                                  tuple(ranked))
        if confidence < self.min_confidence:
            return ClassGuess(None, None, 1.0 - confidence,
                              f"no class stands out: the likeliest, {pair.class_names[best]}, has {confidence:.0%} of "
                              f"the model's belief ({scope} scored)", tuple(ranked))
        return ClassGuess(best, pair.class_names[best], confidence,
                          f"the model's likelihood of the picture: {best_loss:.2f} nats per token under it, "
                          f"{null:.2f} with no class ({scope} scored)", tuple(ranked))


def _losses(pair: "ModelPair", codes: torch.Tensor, orders: torch.Tensor, classes: list[int],
            batch: int) -> torch.Tensor:
    """Mean cross-entropy (nats per token) of the scored tokens under each class, over all orders: [len(classes)]."""
    K = orders.shape[0]
    cls = torch.tensor(classes, device=codes.device).repeat_interleave(K)
    ords = orders.repeat(len(classes), 1)
    out = []
    with torch.inference_mode():
        for start in range(0, cls.shape[0], batch):
            c, o = cls[start:start + batch], ords[start:start + batch]
            tokens = codes.expand(c.shape[0], -1)
            logits = pair.gpt(tokens, c, o)
            out.append(F.cross_entropy(logits.transpose(1, 2), tokens.gather(1, o), reduction="none").mean(1))
    return torch.cat(out).float().view(len(classes), K).mean(1).cpu()


def _linear_scores(pair: "ModelPair", codes: torch.Tensor, orders: torch.Tensor) -> torch.Tensor:
    """A first-order estimate of every class's log-likelihood (up to a constant): one forward and backward pass
    at the mean class embedding, the gradient dotted with each class's embedding row. [num_classes]"""
    gpt, C = pair.gpt, pair.num_classes
    table = gpt.cls_embedding.embedding_table.weight.detach()
    K = orders.shape[0]
    # tensors made under inference_mode cannot take part in autograd: plain copies first
    with torch.inference_mode(False), torch.enable_grad():
        tokens = codes.expand(K, -1).clone()
        orders = orders.clone()
        kind, value, cell = teacher_forcing_slots(tokens, torch.full((K,), gpt.null_class, device=tokens.device), orders)
        x, freqs = gpt.embed(kind, value, cell)
        x, freqs = x.detach().clone(), freqs.detach().clone()
        anchor = table[:C].float().mean(0).clone().requires_grad_(True)
        x = torch.cat([anchor.to(x.dtype).expand(K, 1, -1), x[:, 1:]], 1)
        logits = gpt.logits(gpt.forward_hidden(x, freqs)[:, 1::2])
        ll = -F.cross_entropy(logits.transpose(1, 2), tokens.gather(1, orders), reduction="sum")
        (grad,) = torch.autograd.grad(ll, anchor)
    return (table[:C].float() @ grad.float()).cpu()


# ------------------------------------------------------------------------------------------------------
# Guessers a model directory brings

GuesserFactory = Callable[[Path], "ClassGuesser | None"]
_FACTORIES: list[GuesserFactory] = []


def register_guesser(factory: GuesserFactory) -> None:
    """Add a factory tried (newest first) by `guesser_for` on a model's directory: it returns a guesser for a
    directory it recognises (one that ships a classifier), else None."""
    _FACTORIES.insert(0, factory)


def guesser_for(model_dir: str | Path | None) -> ClassGuesser:
    """The class guesser for a model: the first registered factory that recognises its directory, else the
    model's own likelihood (`LikelihoodGuesser`)."""
    if model_dir is not None:
        for factory in _FACTORIES:
            guesser = factory(Path(model_dir))
            if guesser is not None:
                return guesser
    return LikelihoodGuesser()
