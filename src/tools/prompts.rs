//! MCP prompts: templates a person picks in their client (a slash command or a menu) to start
//! well. There is one, `delegate_research`, served with the `tasks` toolset: it turns a topic
//! and a budget into a request that has the model write a complete research brief for
//! `create_task` instead of a one-line question, and collect the answer if it runs long.

use rmcp::handler::server::router::prompt::PromptRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{GetPromptResult, PromptMessage, Role};
use rmcp::{ErrorData, prompt, prompt_router};
use schemars::JsonSchema;
use serde::Deserialize;

use super::HandingerServer;
use crate::handinger::Budget;

/// Arguments of `delegate_research` (prompt arguments are strings).
#[derive(Debug, Deserialize, JsonSchema)]
pub(super) struct DelegateResearchArgs {
    /// What to research: a question or a subject, as specific as you like.
    pub topic: String,
    /// How much the worker may spend: low, standard, high or unlimited (default: the server's
    /// default budget).
    #[serde(default)]
    pub budget: Option<String>,
}

#[prompt_router(router = "task_prompts", vis = "pub(super)")]
impl HandingerServer {
    #[prompt(
        name = "delegate_research",
        title = "Delegate research to a Handinger worker",
        description = "Have a Handinger worker research a topic: asks the model to write a \
complete brief and run it with create_task at the budget you choose, then to report the \
findings with their sources."
    )]
    pub(super) async fn delegate_research(
        &self,
        Parameters(args): Parameters<DelegateResearchArgs>,
    ) -> Result<GetPromptResult, ErrorData> {
        let topic = args.topic.trim();
        if topic.is_empty() {
            return Err(ErrorData::invalid_params(
                "topic is empty: say what to research",
                None,
            ));
        }
        let budget = match args.budget.as_deref().map(str::trim) {
            None | Some("") => self.services.policy.default_budget,
            Some(raw) => parse_budget(raw)?,
        };
        if budget > self.services.policy.max_budget {
            return Err(ErrorData::invalid_params(
                format!(
                    "budget {budget} is above this server's limit {} (--max-budget): pick {} or lower",
                    self.services.policy.max_budget, self.services.policy.max_budget
                ),
                None,
            ));
        }
        Ok(GetPromptResult::new(vec![PromptMessage::new_text(
            Role::User,
            research_request(topic, budget),
        )])
        .with_description(format!("Research brief for a Handinger worker: {topic}")))
    }
}

impl HandingerServer {
    /// The prompts for the tools served: `delegate_research` needs `create_task`.
    pub(super) fn prompts_for(serves_create_task: bool) -> PromptRouter<Self> {
        if serves_create_task {
            Self::task_prompts()
        } else {
            PromptRouter::new()
        }
    }
}

fn parse_budget(raw: &str) -> Result<Budget, ErrorData> {
    serde_json::from_value(serde_json::Value::String(raw.to_ascii_lowercase())).map_err(|_| {
        ErrorData::invalid_params(
            format!("budget {raw:?} is not one of low, standard, high, unlimited"),
            None,
        )
    })
}

fn research_request(topic: &str, budget: Budget) -> String {
    format!(
        "Please have a Handinger worker research this for me:\n\n{topic}\n\n\
Use the create_task tool with budget \"{budget}\". Its input is all the worker gets, so write \
it as a complete brief: the question to answer, why I am asking and what I already know (from \
this conversation), the scope (time period, regions, kinds of sources to prefer or avoid), and \
the form of the answer (for example a short summary first, then the key findings, each with \
its source). If the result comes back with status \"running\", call get_task with its taskId \
and a wait until the answer is in; do not start the task again. Then give me the findings with \
their sources, and the taskId so I can ask follow-up questions on the same task."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse_in_any_case_and_unknown_ones_are_named() {
        assert_eq!(parse_budget("High").unwrap(), Budget::High);
        assert!(parse_budget("huge").unwrap_err().message.contains("huge"));
    }

    #[test]
    fn the_request_names_the_tool_the_budget_and_the_topic() {
        let text = research_request("EU battery recycling rules", Budget::High);
        assert!(text.contains("EU battery recycling rules"));
        assert!(text.contains("create_task") && text.contains("budget \"high\""));
        assert!(text.contains("get_task"));
    }
}
