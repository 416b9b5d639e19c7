"""Similarity of networks at three levels, all pairwise and batched over networks.

**Dynamics** -- Dynamical Similarity Analysis (Ostrow, Eisen, Kozachkov & Fiete 2023, "Beyond
geometry: comparing the temporal structure of computation in neural circuits with dynamical
similarity analysis", NeurIPS 2023):

* :mod:`.dmd` -- Hankel delay embedding and DMD in HAVOK coordinates
  (:func:`delay_embed`, :func:`fit_dmd`), one ``[r, r]`` map per network;
* :mod:`.orthogonal` -- the batched Cayley curvilinear search on the orthogonal group (Wen & Yin
  2013) that finds the best orthogonal change of coordinates between two maps;
* :mod:`.dsa` -- Procrustes analysis over vector fields (:func:`procrustes_vector_fields`), the
  eigenvalue-Wasserstein variant (:func:`eigenvalue_wasserstein`), the whole pipeline
  (:func:`dsa`) and the trajectories it starts from (:func:`trajectories`).

**Representations** -- :mod:`.representational`: :func:`procrustes_distance`,
:func:`cca_distance` (Williams, Kunz, Kornblith & Linderman 2021, "Generalized shape metrics on
neural representations", NeurIPS 2021), :func:`cka` / :func:`cka_distance` (Kornblith, Norouzi,
Lee & Hinton 2019, "Similarity of neural network representations revisited", ICML 2019).

**Weights** -- :mod:`.weights`: :func:`weight_distance`, the permutation-invariant distance of
Huang, Singh, Martinelli & Rajan (2025), "Measuring and controlling solution degeneracy across
task-trained recurrent neural networks" (arXiv:2410.03972), solved by graph matching; the roles
of a model's tensors come from its :meth:`~dynrnn.models.RecurrentModel.weight_layout`.
"""

from .dmd import delay_embed, fit_dmd
from .dsa import dsa, eigenvalue_wasserstein, procrustes_vector_fields, trajectories
from .representational import cca_distance, cka, cka_distance, procrustes_distance
from .weights import weight_distance

__all__ = [
    "delay_embed",
    "fit_dmd",
    "procrustes_vector_fields",
    "dsa",
    "eigenvalue_wasserstein",
    "procrustes_distance",
    "cca_distance",
    "cka",
    "cka_distance",
    "weight_distance",
    "trajectories",
]
