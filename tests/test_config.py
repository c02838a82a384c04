"""Out-of-range hyperparameters are refused with a message that says what is wrong."""

import pytest

from iql_tutorial import IQLConfig


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"expectile": 1.0}, "expectile"),
        ({"expectile": 0.0}, "expectile"),
        ({"beta": 0.0}, "beta"),
        ({"beta": -1.0}, "beta"),
        ({"gamma": 1.5}, "gamma"),
        ({"tau_target": 0.0}, "tau_target"),
        ({"target_update_period": 0}, "target_update_period"),
        ({"num_critics": 0}, "num_critics"),
        ({"reward_weights": []}, "reward_weights"),
        ({"total_steps": 0}, "total_steps"),
        ({"batch_size": 0}, "batch_size"),
        ({"actor_lr": -1e-3}, "actor_lr"),
        ({"update_order": "random"}, "update_order"),
        ({"policy": "greedy"}, "policy"),
        ({"actor_dropout": 1.0}, "actor_dropout"),
    ],
)
def test_out_of_range_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        IQLConfig(**kwargs)


def test_defaults_are_the_papers():
    c = IQLConfig()
    assert (c.expectile, c.beta, c.gamma, c.tau_target, c.batch_size) == (0.7, 3.0, 0.99, 0.005, 256)
    assert c.hidden_dims == (256, 256) and c.num_critics == 2 and c.max_weight == 100.0
    assert c.temperature == pytest.approx(1 / 3)


def test_round_trip_and_unknown_fields():
    c = IQLConfig(reward_weights=[1, -2], hidden_dims=[32, 32])
    assert IQLConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="Unknown IQLConfig fields"):
        IQLConfig.from_dict({"expectiles": 0.7})
