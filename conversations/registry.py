"""Which questionnaires exist: the YAML files deployed now, and every version used before.

At start the files in `conversations/questionnaires/` are validated and each version is stored
in `questionnaire_definition`. A response always names its form_id and version; the registry
gives back that exact version, from the files or, for a version no longer deployed, from the
stored YAML. Editing a file without changing its version once graduates answered it would mix
two questionnaires under one version: that is refused at start.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlmodel import func, select

from conversations.questionnaire import Questionnaire, parse_questionnaire
from storage.db import Database
from storage.models import QuestionnaireDefinition, SurveyResponse
from storage.queries import stored_questionnaire

log = logging.getLogger(__name__)

QUESTIONNAIRES_DIR = Path(__file__).resolve().parent / "questionnaires"


class VersionConflictError(RuntimeError):
    """A deployed file changed a version that responses already use."""


class QuestionnaireRegistry:
    def __init__(self, directory: Path = QUESTIONNAIRES_DIR) -> None:
        self.directory = directory
        self._deployed: dict[str, Questionnaire] = {}
        self._versions: dict[tuple[str, str], Questionnaire] = {}
        self._texts: dict[str, str] = {}
        for path in sorted(directory.glob("*.yaml")):
            text = path.read_text(encoding="utf-8")
            questionnaire = parse_questionnaire(text, source=str(path))
            if questionnaire.form_id in self._deployed:
                raise VersionConflictError(
                    f"{path}: form_id {questionnaire.form_id!r} is used by two files"
                )
            self._deployed[questionnaire.form_id] = questionnaire
            self._texts[questionnaire.form_id] = text
            self._versions[(questionnaire.form_id, questionnaire.version)] = questionnaire

    @property
    def form_ids(self) -> list[str]:
        return sorted(self._deployed)

    def deployed(self, form_id: str) -> Questionnaire:
        """The version of `form_id` that new responses use."""
        return self._deployed[form_id]

    async def sync(self, db: Database) -> None:
        """Store every deployed version; refuse a changed file under a used version.

        Several processes starting at once (workers of `serve`) may store the same version at
        the same moment: the loser's insert violates the unique (form_id, version) and it
        checks again against what the winner stored."""
        for attempt in range(3):
            try:
                await self._sync_once(db)
                return
            except IntegrityError:
                if attempt == 2:
                    raise
                log.info("another process stored the questionnaires just now; checking again")

    async def _sync_once(self, db: Database) -> None:
        async with db.session() as session:
            for form_id, questionnaire in self._deployed.items():
                text = self._texts[form_id]
                stored = (
                    await session.exec(
                        select(QuestionnaireDefinition).where(
                            QuestionnaireDefinition.form_id == questionnaire.form_id,
                            QuestionnaireDefinition.version == questionnaire.version,
                        )
                    )
                ).first()
                if stored is None:
                    session.add(
                        QuestionnaireDefinition(
                            form_id=questionnaire.form_id,
                            version=questionnaire.version,
                            source=text,
                        )
                    )
                    continue
                if stored.source == text:
                    continue
                used = (
                    await session.exec(
                        select(func.count())
                        .select_from(SurveyResponse)
                        .where(
                            SurveyResponse.form_id == questionnaire.form_id,
                            SurveyResponse.version == questionnaire.version,
                        )
                    )
                ).one()
                if used:
                    raise VersionConflictError(
                        f"questionnaire {questionnaire.form_id} version {questionnaire.version} "
                        f"changed, but {used} responses already use it: give the changed file "
                        "a new settings.version"
                    )
                log.info(
                    "questionnaire %s %s changed before first use; storing the new text",
                    questionnaire.form_id,
                    questionnaire.version,
                )
                stored.source = text
                session.add(stored)

    async def get(self, db: Database, form_id: str, version: str) -> Questionnaire:
        """Exactly the version a response was begun on."""
        key = (form_id, version)
        if key not in self._versions:
            async with db.session() as session:
                stored = await stored_questionnaire(session, form_id, version)
            if stored is None:
                raise KeyError(f"questionnaire {form_id} version {version} is unknown")
            self._versions[key] = parse_questionnaire(
                stored, source=f"{form_id} {version} (stored)"
            )
        return self._versions[key]
