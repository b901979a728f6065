//! `/api/v1/users`: user accounts, for admins (and one's own account for everyone).

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::caller::{audit_entry, authorize};
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path, Query};
use super::page::{PageParams, Paginated};
use crate::audit;
use crate::auth::password;
use crate::auth::policy::{Action, Principal};
use crate::auth::sessions::{self, RequestInfo};
use crate::db::users::{self, AccountRole, NewUser, User, UserChanges, UserId};
use crate::http::AppState;

/// A user account.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserDto {
    /// Its id.
    pub id: Uuid,
    /// Sign-in address, lower case.
    #[schema(example = "dj@example.org")]
    pub email: String,
    /// `admin` (everything, everywhere) or `user` (what station roles allow).
    #[schema(example = "user")]
    pub role: String,
    /// A disabled user cannot sign in.
    pub disabled: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<User> for UserDto {
    fn from(u: User) -> Self {
        UserDto {
            id: u.id.as_uuid(),
            email: u.email,
            role: u.role.as_str().to_owned(),
            disabled: u.disabled,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// An account role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AccountRoleDto {
    /// Everything, at every station.
    Admin,
    /// What the user's roles at stations allow.
    User,
}

impl From<AccountRoleDto> for AccountRole {
    fn from(r: AccountRoleDto) -> Self {
        match r {
            AccountRoleDto::Admin => AccountRole::Admin,
            AccountRoleDto::User => AccountRole::User,
        }
    }
}

/// A new account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// Sign-in address.
    #[schema(example = "dj@example.org")]
    pub email: String,
    /// At least 10 characters.
    pub password: String,
    /// `admin` or `user` (default `user`).
    #[serde(default)]
    pub role: Option<AccountRoleDto>,
    /// Whether it starts disabled (default no).
    #[serde(default)]
    pub disabled: bool,
}

/// Changes to an account; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// A new sign-in address.
    pub email: Option<String>,
    /// A new account role.
    pub role: Option<AccountRoleDto>,
    /// Disable (ends every session) or enable.
    pub disabled: Option<bool>,
    /// A new password (ends every session): at least 10 characters.
    pub password: Option<String>,
}

/// The `{user_id}` of a path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct UserPath {
    /// The user.
    pub user_id: Uuid,
}

/// Refuses a change that would leave no enabled admin: nobody could manage users any more.
fn keep_an_admin(conn: &mut crate::db::DbConnection) -> Result<(), ApiError> {
    if users::count_active_admins(conn)? == 0 {
        return Err(ApiError::conflict(
            "this would leave no enabled admin; make another user admin first",
        ));
    }
    Ok(())
}

async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "password task");
            ApiError::internal()
        })?
        .map_err(ApiError::from)
}

/// List users (admins).
#[utoipa::path(
    get, path = "/users", tag = "users",
    params(PageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of users, by email", body = Paginated<UserDto>),
        (status = 400, description = "Bad paging", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
    )
)]
pub(crate) async fn list_users(
    State(state): State<AppState>,
    principal: Principal,
    Query(params): Query<PageParams>,
) -> Result<Json<Paginated<UserDto>>, ApiError> {
    authorize(&principal, Action::UserAdmin, None)?;
    let page = params.page()?;
    let (items, total) = state.db.run(move |conn| users::list(conn, page)).await?;
    Ok(Json(Paginated::new(items, total, page).map(UserDto::from)))
}

/// Create a user (admins).
#[utoipa::path(
    post, path = "/users", tag = "users",
    request_body = CreateUser,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = UserDto),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 409, description = "The email is taken", body = ErrorBody),
        (status = 422, description = "A field is missing or refused", body = ErrorBody),
    )
)]
pub(crate) async fn create_user(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Json(body): Json<CreateUser>,
) -> Result<(StatusCode, Json<UserDto>), ApiError> {
    authorize(&principal, Action::UserAdmin, None)?;
    users::normalize_email(&body.email)?;
    password::check_new(&body.password)?;
    let new = NewUser {
        email: body.email,
        password_hash: hash_password(body.password).await?,
        role: body.role.map_or(AccountRole::User, AccountRole::from),
        disabled: body.disabled,
    };
    let entry = audit_entry(&principal, &info, "user.create", "user");
    let user = super::transaction(&state.db, move |conn| {
        let user = users::create(conn, &new)?;
        let details = serde_json::json!({ "email": user.email, "role": user.role.as_str() });
        audit::record(conn, &entry.target(user.id).details(details))?;
        Ok(user)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// Get a user (admins, or oneself).
#[utoipa::path(
    get, path = "/users/{user_id}", tag = "users",
    params(UserPath),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The user", body = UserDto),
        (status = 400, description = "Not a user id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Neither admin nor oneself", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
    )
)]
pub(crate) async fn get_user(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<UserPath>,
) -> Result<Json<UserDto>, ApiError> {
    let id = UserId::from(path.user_id);
    let action = if id == principal.user_id {
        Action::SelfRead
    } else {
        Action::UserAdmin
    };
    authorize(&principal, action, None)?;
    let user = state.db.run(move |conn| users::get(conn, id)).await?;
    Ok(Json(user.into()))
}

/// Change a user (admins).
///
/// Disabling a user or setting its password ends all its sessions. A change that would leave no
/// enabled admin is refused (409).
#[utoipa::path(
    patch, path = "/users/{user_id}", tag = "users",
    params(UserPath),
    request_body = UpdateUser,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user as changed", body = UserDto),
        (status = 400, description = "Not a user id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "The email is taken, or no admin would be left", body = ErrorBody),
        (status = 422, description = "A field is refused", body = ErrorBody),
    )
)]
pub(crate) async fn update_user(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<UserPath>,
    Json(body): Json<UpdateUser>,
) -> Result<Json<UserDto>, ApiError> {
    authorize(&principal, Action::UserAdmin, None)?;
    let id = UserId::from(path.user_id);
    if let Some(email) = &body.email {
        users::normalize_email(email)?;
    }
    let new_hash = match body.password {
        Some(p) => {
            password::check_new(&p)?;
            Some(hash_password(p).await?)
        }
        None => None,
    };
    let changes = UserChanges {
        email: body.email,
        role: body.role.map(AccountRole::from),
        disabled: body.disabled,
    };
    let details = serde_json::json!({
        "email": changes.email,
        "role": changes.role.map(AccountRole::as_str),
        "disabled": changes.disabled,
        "password_changed": new_hash.is_some(),
    });
    let entry = audit_entry(&principal, &info, "user.update", "user")
        .target(id)
        .details(details);
    let user = super::transaction(&state.db, move |conn| {
        let user = users::update(conn, id, &changes)?;
        if let Some(hash) = &new_hash {
            users::set_password_hash(conn, id, hash)?;
        }
        if new_hash.is_some() || changes.disabled == Some(true) {
            sessions::end_sessions(conn, id)?;
        }
        keep_an_admin(conn)?;
        audit::record(conn, &entry)?;
        Ok(user)
    })
    .await?;
    Ok(Json(user.into()))
}

/// Delete a user (admins).
///
/// Its station roles, sessions and API keys go with it. Deleting the last enabled admin is
/// refused (409).
#[utoipa::path(
    delete, path = "/users/{user_id}", tag = "users",
    params(UserPath),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Not a user id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "No admin would be left", body = ErrorBody),
    )
)]
pub(crate) async fn delete_user(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<UserPath>,
) -> Result<StatusCode, ApiError> {
    authorize(&principal, Action::UserAdmin, None)?;
    let id = UserId::from(path.user_id);
    let entry = audit_entry(&principal, &info, "user.delete", "user").target(id);
    let user = state.db.run(move |conn| users::get(conn, id)).await?;
    let entry = entry.details(serde_json::json!({ "email": user.email }));
    super::transaction(&state.db, move |conn| {
        users::delete(conn, id)?;
        keep_an_admin(conn)?;
        audit::record(conn, &entry)?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
