import numpy as np

from sweep.models import MODELS, ModelSpec, random_model, represented


def test_random_w_unit_columns_zero_mean(rng):
    model = random_model(400, 30, rng=rng)
    assert model.W.shape == (30, 400)
    assert np.allclose(np.linalg.norm(model.W, axis=0), 1.0)
    assert abs(model.W.mean()) < 0.01
    # entries of a random unit vector in R^m have variance 1/m
    assert abs(model.W.var() - 1 / 30) < 0.003
    assert np.array_equal(model.b, np.zeros(400))
    assert np.array_equal(model.importance, np.ones(400))


def test_registered_random_draws_one_model_per_trial_stream():
    rngs = [np.random.default_rng(s) for s in (3, 4)]
    models = MODELS["random"](ModelSpec(10, 4, rngs=rngs))
    again = random_model(10, 4, rng=np.random.default_rng(4))
    assert len(models) == 2 and np.array_equal(models[1].W, again.W)


def test_every_model_declares_whether_it_is_trained_and_has_ground_truth():
    assert MODELS.having(trained=True) == ["toy_linear", "toy_relu"]
    assert MODELS.having(trained=False) == ["activations", "digits_mlp", "random"]
    assert MODELS.having(truth=False) == ["activations", "digits_mlp"]


def test_represented_threshold():
    W = np.array([[1.0, 0.0, 1e-4, 2e-3], [0.0, 0.0, 0.0, 0.0]])
    assert represented(W).tolist() == [True, False, False, True]
    assert not represented(np.zeros((2, 3))).any()
