//! Refusal facts written by the service, against the real sled log.

use crate::model::*;

use crate::app::testing::*;

#[tokio::test]
async fn refused_attempts_are_recorded_as_access_denied() {
    let w = World::new();
    let site_id = w.site().await;
    let viewer = person(Role::Viewer, "vic");
    let error = w
        .service
        .create_policy(
            &viewer,
            site_id,
            "p",
            PolicyBody::EventResponse(ResponsePolicyBody::default()),
        )
        .await
        .expect_err("viewer");
    assert_eq!(error.code(), Some(ErrorCode::Forbidden));
    let last = w.all_events().await.pop().expect("an event");
    assert_eq!(last.stream, ACCESS_DENIED_STREAM);
    match last.payload {
        DomainEvent::AccessDenied {
            principal, action, ..
        } => {
            assert_eq!(
                (principal.as_str(), action.as_str()),
                ("vic", "MANAGE_POLICIES")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_refusals_of_one_request_are_one_fact_with_their_count() {
    let w = World::new();
    let site_id = w.site().await;
    let viewer = person(Role::Viewer, "vic");
    let before = w.all_events().await.len();
    let refused = w
        .service
        .coalescing_denials(async {
            let mut codes = Vec::new();
            for _ in 0..1000 {
                let error = w
                    .service
                    .authorize(&viewer, Action::ManagePolicies, Target::Site(site_id))
                    .await
                    .expect_err("a viewer manages no policies");
                codes.push(error.code());
            }
            codes
        })
        .await;
    assert!(refused.iter().all(|c| *c == Some(ErrorCode::Forbidden)));
    match refusal_facts(&w, before).await.as_slice() {
        [DomainEvent::AccessDeniedRepeated {
            principal,
            action,
            refused,
            suppressed,
            site_id: site,
            ..
        }] => {
            assert_eq!(
                (principal.as_str(), action.as_str()),
                ("vic", "MANAGE_POLICIES")
            );
            assert_eq!((*refused, *suppressed, *site), (1000, 0, Some(site_id)));
        }
        other => panic!("one coalesced fact, not {other:?}"),
    }
}

#[tokio::test]
async fn a_principal_gets_its_rate_of_refusal_facts_and_the_next_window_says_what_was_left_out() {
    let w = World::new();
    let site_id = w.site().await;
    let viewer = person(Role::Viewer, "vic");
    let before = w.all_events().await.len();
    let refuse = || async {
        w.service
            .authorize(&viewer, Action::ManagePolicies, Target::Site(site_id))
            .await
            .expect_err("refused")
    };
    let rate = crate::app::DENIAL_FACTS_PER_MINUTE as usize;
    for _ in 0..rate + 7 {
        refuse().await;
    }
    assert_eq!(refusal_facts(&w, before).await.len(), rate);
    let counts = w.service.denial_counts();
    assert_eq!((counts.facts, counts.unrecorded), (rate as u64, 7));
    w.clock.advance_secs(60);
    refuse().await;
    match refusal_facts(&w, before).await.last() {
        Some(DomainEvent::AccessDeniedRepeated {
            refused,
            suppressed,
            ..
        }) => assert_eq!((*refused, *suppressed), (1, 7)),
        other => panic!("{other:?}"),
    }
}
